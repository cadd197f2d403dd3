"""Pilot's ``/debug/syncz`` as the launcher reads it: which proxies are connected and in sync.

:func:`fetch_sync` returns one :class:`ProxySync` per proxy id (the newest stream when a
proxy has several, as it does for a moment while reconnecting). ``nacks`` counts the
NACKs of every type on that stream and ``last_nack`` quotes Envoy's error text. Raises
``httpx.HTTPError`` when Pilot does not answer, ``ValueError`` when the page is not what
Pilot serves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class ProxySync:
    """One connected proxy as Pilot reports it."""

    proxy_id: str
    protocol: str
    in_sync: bool
    version: str | None
    nacks: int
    last_nack: str | None
    acked: Mapping[str, str | None]


def fetch_sync(url: str) -> dict[str, ProxySync]:
    """GET Pilot's syncz page at ``url`` and parse it (see the module docstring)."""
    response = httpx.get(url, timeout=_TIMEOUT_S)
    response.raise_for_status()
    return parse_sync(response.json())


def parse_sync(page: Any) -> dict[str, ProxySync]:
    """Parse the JSON of ``/debug/syncz``: ``{"version": ..., "proxies": [stream, ...]}``."""
    streams = page.get("proxies") if isinstance(page, Mapping) else None
    if not isinstance(streams, Sequence) or isinstance(streams, str):
        raise ValueError("syncz page holds no list of proxies")
    proxies: dict[str, ProxySync] = {}
    for stream in streams:  # later streams of a proxy are newer
        proxy = _proxy(stream)
        proxies[proxy.proxy_id] = proxy
    return proxies


def _proxy(stream: Any) -> ProxySync:
    if not isinstance(stream, Mapping) or not isinstance(stream.get("proxy"), str):
        raise ValueError(f"syncz entry {stream!r} names no proxy")
    nacks = 0
    last_nack: str | None = None
    acked: dict[str, str | None] = {}
    for type_name, watch in (stream.get("types") or {}).items():
        nacks += int(watch.get("nacks") or 0)
        acked[str(type_name)] = watch.get("acked_version")
        nack = watch.get("last_nack")
        if isinstance(nack, Mapping) and nack.get("message"):
            last_nack = f"{type_name}: {nack['message']}"
    return ProxySync(
        proxy_id=stream["proxy"],
        protocol=str(stream.get("protocol", "")),
        in_sync=bool(stream.get("in_sync")),
        version=stream.get("version"),
        nacks=nacks,
        last_nack=last_nack,
        acked=acked,
    )
