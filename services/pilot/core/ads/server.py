"""The discovery server: connected proxies, the current snapshot, debounced pushes.

:class:`DiscoveryServer` is the core the ADS adapter drives. The config store calls
:meth:`DiscoveryServer.update` with each new :class:`MeshSnapshot` and whether the change
is full or endpoints-only; the push debouncer (:mod:`.debounce`) releases the newest one
after the quiet period, which makes it current, resets the generation cache (:mod:`.cache`,
which runs the ``translation``) and marks every connection: all watched types for a full
push, EDS only for an endpoint push (the first snapshot is always full). Each connection
then generates and sends at the pace of its own stream (:mod:`.connection`).

:meth:`DiscoveryServer.connect` opens a :class:`~.sotw.SotwConnection` or a
:class:`~.delta.DeltaConnection` for a stream's first node (it must describe a proxy:
:class:`BadNodeError` otherwise), :meth:`DiscoveryServer.disconnect` forgets it.
:meth:`status` and :meth:`config_for_proxy` back the debug views.

It is a Component (``start``/``stop``): stop drops a pending push and closes every
connection. Task safety: everything runs on one event loop; generation alone runs in
worker threads (see :mod:`.cache`).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from envoy.config.core.v3 import base_pb2
from google.protobuf import json_format
from opentelemetry import metrics

from services.pilot.core.ads.cache import GenerationCache, Translation
from services.pilot.core.ads.connection import Connection, ConnectionStatus
from services.pilot.core.ads.debounce import PushDebouncer
from services.pilot.core.ads.errors import BadNodeError
from services.pilot.core.ads.metrics import AdsMetrics
from services.pilot.core.ads.resources import PackedConfig
from services.pilot.core.model import InvalidNodeError, Proxy, parse_proxy
from services.pilot.core.snapshot import MeshSnapshot

_log = logging.getLogger(__name__)

C = TypeVar("C", bound=Connection[Any])


@dataclass(frozen=True, slots=True)
class DiscoveryStatus:
    """The current snapshot version, when it was released, and every connection."""

    version: str | None
    released_at: float | None
    cached_scopes: int
    connections: tuple[ConnectionStatus, ...]


class DiscoveryServer:
    """Serves generated config to ADS connections (see the module docstring)."""

    name = "pilot-discovery"

    def __init__(
        self,
        *,
        translation: Translation,
        debounce_quiet: float = 0.1,
        debounce_max: float = 10.0,
        push_concurrency: int = 4,
        meter: metrics.Meter | None = None,
    ) -> None:
        self._metrics = AdsMetrics(meter)
        self._cache = GenerationCache(
            translation=translation, concurrency=push_concurrency, metrics=self._metrics
        )
        self._debouncer = PushDebouncer(self._release, quiet=debounce_quiet, max_delay=debounce_max)
        self._snapshot: MeshSnapshot | None = None
        self._released_at: float | None = None
        self._active_at: float | None = None
        self._connections: dict[str, Connection[Any]] = {}
        self._nonces = itertools.count(1)
        self._ids = itertools.count(1)

    @property
    def snapshot(self) -> MeshSnapshot | None:
        """The newest released snapshot (None until the first release)."""
        return self._snapshot

    @property
    def metrics(self) -> AdsMetrics:
        """The server's instruments."""
        return self._metrics

    def next_nonce(self) -> str:
        """A nonce no response of this server used before."""
        return str(next(self._nonces))

    async def config_for(self, snapshot: MeshSnapshot, proxy: Proxy) -> PackedConfig:
        """``proxy``'s packed config at ``snapshot`` (shared per scope)."""
        return await self._cache.get(snapshot, proxy)

    async def start(self) -> None:
        """Nothing to start: pushes begin with the first :meth:`update`."""

    async def stop(self) -> None:
        """Drop a pending push and close every connection. Idempotent."""
        await self._debouncer.stop()
        for connection in list(self._connections.values()):
            self.disconnect(connection)

    def update(self, snapshot: MeshSnapshot, *, full: bool) -> None:
        """A new snapshot: push it (debounced); ``full`` False means only endpoints changed."""
        self._debouncer.trigger(snapshot, full=full or self._snapshot is None)

    def connect(self, node: base_pb2.Node, *, peer: str, kind: type[C]) -> C:
        """Open a ``kind`` connection for a stream whose first request carried ``node``."""
        proxy = proxy_from_node(node)
        connection = kind(conn_id=f"{proxy.id}-{next(self._ids)}", proxy=proxy, peer=peer, hub=self)
        self._connections[connection.id] = connection
        self._active_at = time.monotonic()
        self._metrics.connected.add(1)
        _log.info("proxy %s connected (%s, %s)", proxy.id, connection.protocol, peer)
        return connection

    def disconnect(self, connection: Connection[Any]) -> None:
        """Close ``connection`` and forget it. Idempotent."""
        connection.close()
        if self._connections.pop(connection.id, None) is not None:
            self._metrics.connected.add(-1)
            _log.info("proxy %s disconnected", connection.proxy.id)

    def last_activity(self) -> float | None:
        """When (``time.monotonic()``) a push was released or a proxy connected last."""
        return self._active_at

    def connections(self) -> Iterator[Connection[Any]]:
        """The open connections, oldest first."""
        return iter(tuple(self._connections.values()))

    def status(self) -> DiscoveryStatus:
        """What /debug/syncz and /debug/adsz show."""
        return DiscoveryStatus(
            version=None if self._snapshot is None else self._snapshot.version,
            released_at=self._released_at,
            cached_scopes=self._cache.size(),
            connections=tuple(c.status() for c in self._connections.values()),
        )

    async def config_for_proxy(self, proxy_id: str) -> PackedConfig | None:
        """The config of the connected proxy ``proxy_id`` now (None: unknown or not synced)."""
        snapshot = self._snapshot
        connection = next((c for c in self.connections() if c.proxy.id == proxy_id), None)
        if snapshot is None or connection is None:
            return None
        return await self._cache.get(snapshot, connection.proxy)

    def _release(self, snapshot: MeshSnapshot, full: bool) -> None:
        self._snapshot = snapshot
        self._released_at = time.time()
        self._cache.reset(snapshot)
        started = self._active_at = time.monotonic()
        for connection in self.connections():
            connection.push(full=full, started=started)
        _log.info(
            "pushing version %s (%s) to %d proxies",
            snapshot.version,
            "full" if full else "endpoints",
            len(self._connections),
        )


def proxy_from_node(node: base_pb2.Node) -> Proxy:
    """The :class:`Proxy` an Envoy ``Node`` describes; :class:`BadNodeError` if none."""
    if not node.id:
        raise BadNodeError("the first request of a stream must carry a node with an id")
    try:
        return parse_proxy(node.id, json_format.MessageToDict(node.metadata))
    except InvalidNodeError as exc:
        raise BadNodeError(str(exc)) from exc
