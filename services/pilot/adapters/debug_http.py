"""Pilot's debug and readiness endpoints on the admin FastAPI app.

:func:`debug_views` gives the JSON views for ``shared.http_server.build_http_app``'s
``/debug/{name}``:

- ``/debug/syncz``: the snapshot version pushed last (and when), and each connected proxy's
  sent and ACKed version (and nonce, NACK count and last NACK with Envoy's error text) per
  type, and whether it is in sync;
- ``/debug/configz``: the config Pilot holds, by collection with versions, the mesh
  snapshot version, the translation problems and the last error talking to Galley;
- ``/debug/adsz``: the open ADS connections (peer, protocol, subscribed names per type).

:func:`register` adds to the app ``GET /ready`` (200 once config has synced from Galley,
503 before) and ``GET /debug/config_dump?proxy=ID`` (the resources generated for that
connected proxy now, as Envoy JSON; 404 for a proxy that is not connected, 503 before
Pilot has synced). Both are served ahead of the generic ``/debug/{name}`` route.

Task safety: the views run on the event loop thread and only read loop-owned state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import PlainTextResponse
from google.protobuf import json_format

from services.pilot.core.ads.connection import ConnectionStatus
from services.pilot.core.ads.metrics import short_type
from services.pilot.core.ads.server import DiscoveryServer
from services.pilot.core.config_store import ConfigStore
from services.pilot.core.model import TYPE_URLS

_DUMP_NAMES = {"cds": "clusters", "eds": "endpoints", "lds": "listeners", "rds": "routes"}


def debug_views(
    discovery: DiscoveryServer, store: ConfigStore, galley_error: Callable[[], str | None]
) -> dict[str, Callable[[], object]]:
    """The ``syncz``, ``configz`` and ``adsz`` views (see the module docstring)."""
    return {
        "syncz": lambda: _syncz(discovery),
        "configz": lambda: {**asdict(store.status()), "galley_error": galley_error()},
        "adsz": lambda: _adsz(discovery),
    }


def register(app: FastAPI, discovery: DiscoveryServer, store: ConfigStore) -> None:
    """Add ``/ready`` and ``/debug/config_dump`` to ``app`` (see the module docstring)."""
    before = len(app.router.routes)

    @app.get("/ready", response_class=PlainTextResponse)
    async def ready() -> PlainTextResponse:
        if not store.synced:
            return PlainTextResponse("pilot has not synced its config from Galley yet", 503)
        return PlainTextResponse("ready")

    @app.get("/debug/config_dump")
    async def config_dump(proxy: str = Query(description="The proxy (node) id")) -> Any:
        if discovery.snapshot is None:
            raise HTTPException(503, "pilot has not synced its config from Galley yet")
        packed = await discovery.config_for_proxy(proxy)
        if packed is None:
            raise HTTPException(404, f"proxy {proxy!r} is not connected; see /debug/adsz")
        dump: dict[str, Any] = {"proxy": proxy, "version": packed.version}
        for type_url in TYPE_URLS:
            dump[_DUMP_NAMES[short_type(type_url)]] = [
                json_format.MessageToDict(message)
                for _, message in sorted(packed.config.of_type(type_url).items())
            ]
        return dump

    # shared.http_server's catch-all /debug/{name} was added first: serve these ahead of it.
    added = app.router.routes[before:]
    del app.router.routes[before:]
    app.router.routes[:0] = added


def _syncz(discovery: DiscoveryServer) -> dict[str, Any]:
    status = discovery.status()
    return {
        "version": status.version,
        "released_at": status.released_at,
        "proxies": [
            {
                "proxy": connection.proxy_id,
                "connection": connection.id,
                "protocol": connection.protocol,
                "version": connection.version,
                "in_sync": connection.in_sync,
                "generation_error": connection.generation_error,
                "types": {
                    name: {
                        "sent_version": watch.sent_version,
                        "sent_nonce": watch.sent_nonce,
                        "acked_version": watch.acked_version,
                        "nacks": watch.nacks,
                        "last_nack": None if watch.last_nack is None else asdict(watch.last_nack),
                    }
                    for name, watch in connection.watches.items()
                },
            }
            for connection in status.connections
        ],
    }


def _adsz(discovery: DiscoveryServer) -> dict[str, Any]:
    status = discovery.status()
    return {
        "total": len(status.connections),
        "cached_scopes": status.cached_scopes,
        "connections": [_connection(connection) for connection in status.connections],
    }


def _connection(connection: ConnectionStatus) -> dict[str, Any]:
    return {
        "id": connection.id,
        "proxy": connection.proxy_id,
        "peer": connection.peer,
        "protocol": connection.protocol,
        "connected_at": connection.connected_at,
        "watches": {
            name: {
                "wildcard": watch.names is None,
                "names": sorted(watch.names or ()),
                "resources": watch.resources,
            }
            for name, watch in connection.watches.items()
        },
    }
