"""Per-proxy config generation with caches of what proxies share, and a concurrency limit.

:class:`GenerationCache` answers "this proxy's packed config at this snapshot" with the
translation's steps (:class:`Translation`, implemented by
``services.pilot.core.xds.generate``) and two caches for the current snapshot (set by
:meth:`GenerationCache.reset` when a push is released; ``reset`` drops the previous
snapshot's entries):

- by ``scope_key(snapshot, proxy)``: proxies with equal keys get an equal complete config,
  so the whole packed config is generated once and shared;
- by ``shared_key(snapshot, proxy)``: the shared part (outbound clusters, endpoints and
  routes, by far the biggest) is generated and packed once per key; a proxy with its own
  scope key then only generates its own resources (inbound, gateway) and packs only those.

After an endpoints-only change (``snapshot.change_from(previous) == "endpoints"``),
``reset`` keeps the previous snapshot's finished shared parts: a scope's first lookup then
only refreshes its load assignments (``refresh_endpoints``) and packs just the ones that
changed, reusing the packed clusters and routes; the previous parts are dropped at the
next reset. In both caches the first lookup starts the work and later lookups await the
same result, also while it is still running. A lookup for a snapshot that is no longer
current is generated but not cached.

Generation runs in worker threads so the event loop keeps serving streams, with at most
``concurrency`` generations at a time (an asyncio semaphore). The translation must
therefore be pure and thread-safe (it is: a pure function of immutable inputs).

Errors: a generation that raises is logged once and its error is cached for that key and
snapshot (every lookup re-raises it; the connections keep their last good config).
Cancellation: a cancelled lookup never cancels a shared generation. Task safety: use from
one event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Hashable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

from services.pilot.core.ads.metrics import AdsMetrics
from services.pilot.core.ads.resources import PackedConfig, PackedResource, pack, pack_all
from services.pilot.core.model import Proxy, ProxyConfig
from services.pilot.core.snapshot import MeshSnapshot
from services.pilot.core.xds.generate import SharedConfig

_log = logging.getLogger(__name__)
_T = TypeVar("_T")


class Translation(Protocol):
    """The xDS translation, in its cacheable steps (``services.pilot.core.xds.generate``)."""

    def scope_key(self, snapshot: MeshSnapshot, proxy: Proxy) -> Hashable:
        """Proxies with equal keys have an equal complete config."""
        ...

    def shared_key(self, snapshot: MeshSnapshot, proxy: Proxy) -> Hashable:
        """Proxies with equal keys share :meth:`generate_shared`'s result."""
        ...

    def generate_shared(self, snapshot: MeshSnapshot, proxy: Proxy) -> SharedConfig:
        """The part of the config that depends only on the shared key."""
        ...

    def refresh_endpoints(
        self, snapshot: MeshSnapshot, proxy: Proxy, earlier: SharedConfig
    ) -> SharedConfig:
        """``earlier`` (same scope, equal config) with the endpoints of ``snapshot``."""
        ...

    def generate(
        self, snapshot: MeshSnapshot, proxy: Proxy, *, shared: SharedConfig | None = None
    ) -> ProxyConfig:
        """The proxy's whole config, reusing ``shared``."""
        ...


@dataclass(frozen=True, slots=True)
class _Shared:
    """A scope's shared config and its messages packed, by message identity."""

    config: SharedConfig
    packed: Mapping[int, PackedResource]


class GenerationCache:
    """Generates and caches packed proxy configs (see the module docstring)."""

    def __init__(self, *, translation: Translation, concurrency: int, metrics: AdsMetrics) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self._translation = translation
        self._semaphore = asyncio.Semaphore(concurrency)
        self._metrics = metrics
        self._current: MeshSnapshot | None = None
        self._configs: dict[Hashable, asyncio.Future[PackedConfig]] = {}
        self._shared: dict[Hashable, asyncio.Future[_Shared]] = {}
        self._earlier: tuple[MeshSnapshot, dict[Hashable, asyncio.Future[_Shared]]] | None = None

    def reset(self, snapshot: MeshSnapshot) -> None:
        """Make ``snapshot`` the current one; forget the previous snapshot's entries.

        After an endpoints-only change the previous shared parts are kept for refreshing.
        """
        previous = self._current
        self._earlier = None
        if previous is not None and snapshot.change_from(previous) == "endpoints":
            self._earlier = (previous, self._shared)
        self._current = snapshot
        self._configs = {}
        self._shared = {}

    def size(self) -> int:
        """How many complete configs are cached for the current snapshot."""
        return len(self._configs)

    async def get(self, snapshot: MeshSnapshot, proxy: Proxy) -> PackedConfig:
        """``proxy``'s packed config at ``snapshot``; raises what generation raised."""
        try:
            if snapshot is not self._current:
                shared = await self._in_worker(self._generate_shared, snapshot, proxy)
                return await self._in_worker(self._proxy_config, snapshot, proxy, shared)
            key = self._translation.scope_key(snapshot, proxy)
            entry = self._configs.get(key)
            if entry is None:
                entry = _shared_future(self._cached_config(snapshot, proxy))
                self._configs[key] = entry
            else:
                self._metrics.generations.add(1, {"result": "hit"})
            return await asyncio.shield(entry)
        except Exception:
            self._metrics.generations.add(1, {"result": "error"})
            raise

    async def _cached_config(self, snapshot: MeshSnapshot, proxy: Proxy) -> PackedConfig:
        key = self._translation.shared_key(snapshot, proxy)
        entry = self._shared.get(key)
        if entry is None:
            self._metrics.generations.add(1, {"result": "miss"})
            earlier = self._earlier_shared(proxy)
            work = (
                self._in_worker(self._generate_shared, snapshot, proxy)
                if earlier is None
                else self._in_worker(self._refresh_shared, snapshot, proxy, earlier)
            )
            entry = _shared_future(work)
            self._shared[key] = entry
        else:
            self._metrics.generations.add(1, {"result": "shared"})
        shared = await asyncio.shield(entry)
        return await self._in_worker(self._proxy_config, snapshot, proxy, shared)

    async def _in_worker(self, work: Callable[..., _T], *args: object) -> _T:
        async with self._semaphore:
            started = time.perf_counter()
            result = await asyncio.to_thread(work, *args)
            self._metrics.generation_time.record(time.perf_counter() - started)
            return result

    def _earlier_shared(self, proxy: Proxy) -> _Shared | None:
        """The previous snapshot's finished shared part of ``proxy``'s scope, if reusable."""
        if self._earlier is None:
            return None
        previous, entries = self._earlier
        entry = entries.get(self._translation.shared_key(previous, proxy))
        if entry is None or not entry.done() or entry.cancelled() or entry.exception():
            return None
        return entry.result()

    def _generate_shared(self, snapshot: MeshSnapshot, proxy: Proxy) -> _Shared:
        try:
            config = self._translation.generate_shared(snapshot, proxy)
        except Exception:
            _log.exception("generating shared config at version %s failed", snapshot.version)
            raise
        route = config.outbound_route
        return _Shared(
            config=config,
            packed=pack_all(
                [
                    *config.clusters.items(),
                    *config.endpoints.items(),
                    (str(getattr(route, "name", "")), route),
                ]
            ),
        )

    def _refresh_shared(self, snapshot: MeshSnapshot, proxy: Proxy, earlier: _Shared) -> _Shared:
        try:
            config = self._translation.refresh_endpoints(snapshot, proxy, earlier.config)
        except Exception:
            _log.exception("refreshing endpoints at version %s failed", snapshot.version)
            raise
        kept = {id(message) for message in config.endpoints.values()}
        dropped = {id(m) for m in earlier.config.endpoints.values()} - kept
        packed = {ident: found for ident, found in earlier.packed.items() if ident not in dropped}
        packed.update(
            pack_all(
                (name, message)
                for name, message in config.endpoints.items()
                if id(message) not in packed
            )
        )
        return _Shared(config=config, packed=MappingProxyType(packed))

    def _proxy_config(self, snapshot: MeshSnapshot, proxy: Proxy, shared: _Shared) -> PackedConfig:
        try:
            config = self._translation.generate(snapshot, proxy, shared=shared.config)
        except Exception:
            _log.exception("generating config of %s at %s failed", proxy.id, snapshot.version)
            raise
        return pack(config, snapshot.version, reuse=shared.packed)


def _shared_future(work: Coroutine[Any, Any, _T]) -> asyncio.Future[_T]:
    """Run ``work`` as a task whose error counts as seen (it is logged; waiters re-raise)."""
    future = asyncio.ensure_future(work)
    future.add_done_callback(lambda done: done.cancelled() or done.exception())
    return future
