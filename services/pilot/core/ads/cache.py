"""Per-proxy config generation with caches of what proxies share, and a concurrency limit.

:class:`GenerationCache` answers "this proxy's packed config at this snapshot" with the
translation's steps (:class:`Translation`, implemented by
``services.pilot.core.xds.generate``) and three caches for the current snapshot (set by
:meth:`GenerationCache.reset` when a push is released; ``reset`` drops the previous
snapshot's entries):

- by ``scope_key(snapshot, proxy)``: proxies with equal keys get an equal complete config,
  so the whole packed config is made once and shared;
- by ``shared_key(snapshot, proxy)``: a scope's shared part (its ``outbound_http`` routes,
  which depend on its namespace) is generated once per key;
- by the scope's cluster digest: the outbound clusters and load assignments (by far the
  biggest part) are generated and packed once for every scope that plans them, usually
  every namespace of a mesh without Sidecars. They form the shared layer of the packed
  configs (:class:`~services.pilot.core.ads.resources.PackedConfig`); a proxy only generates
  and packs its own resources (listeners, routes, inbound clusters).

After an endpoints-only change (``snapshot.change_from(previous) == "endpoints"``),
``reset`` keeps the previous snapshot's finished shared parts: a scope's first lookup then
keeps its routes and only refreshes the load assignments of its cluster part
(``refresh_clusters``, once per digest), packing just the ones that changed, and a proxy
keeps its own packed resources (none depends on endpoints); the previous parts are dropped
at the next reset. In every cache the first lookup starts the work and
later lookups await the same result, also while it is still running. A lookup for a
snapshot that is no longer current is generated but not cached.

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
from collections.abc import Callable, Coroutine, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

from services.pilot.core.ads.metrics import AdsMetrics
from services.pilot.core.ads.resources import PackedConfig, PackedLayer, pack_layer
from services.pilot.core.ads.selection import PackedResource, pack_resource
from services.pilot.core.model import CLUSTER_TYPE, ENDPOINT_TYPE, ROUTE_TYPE, Proxy, ProxyConfig
from services.pilot.core.snapshot import MeshSnapshot
from services.pilot.core.xds.generate import ClusterConfig, OutboundScope, SharedConfig

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

    def outbound_scope(self, snapshot: MeshSnapshot, proxy: Proxy) -> OutboundScope:
        """What the proxy sees, with the digest of the clusters it plans."""
        ...

    def generate_clusters(self, snapshot: MeshSnapshot, outbound: OutboundScope) -> ClusterConfig:
        """Clusters and load assignments of every scope with ``outbound``'s digest."""
        ...

    def refresh_clusters(self, snapshot: MeshSnapshot, earlier: ClusterConfig) -> ClusterConfig:
        """``earlier`` (equal config) with the endpoints of ``snapshot``."""
        ...

    def generate_shared(
        self,
        snapshot: MeshSnapshot,
        proxy: Proxy,
        *,
        outbound: OutboundScope | None = None,
        clusters: ClusterConfig | None = None,
    ) -> SharedConfig:
        """The part of the config that depends only on the shared key."""
        ...

    def refresh_endpoints(
        self,
        snapshot: MeshSnapshot,
        proxy: Proxy,
        earlier: SharedConfig,
        *,
        clusters: ClusterConfig | None = None,
    ) -> SharedConfig:
        """``earlier`` (same scope, equal config) with ``clusters`` refreshed."""
        ...

    def generate_own(
        self, snapshot: MeshSnapshot, proxy: Proxy, shared: SharedConfig
    ) -> ProxyConfig:
        """The proxy's own resources on top of ``shared``."""
        ...


@dataclass(frozen=True, slots=True)
class _Clusters:
    """A cluster part and its packed layer (clusters and load assignments)."""

    config: ClusterConfig
    layer: PackedLayer


@dataclass(frozen=True, slots=True)
class _Shared:
    """A scope's shared config, its cluster part and its ``outbound_http`` route packed.

    The route is kept only packed (as a message it takes several times the memory): the
    config's ``outbound_route`` is an empty stand-in. A sidecar's packed config finds the
    route in ``layer`` (so its RDS selection of it is shared too), not in its own layer.
    """

    config: SharedConfig
    clusters: _Clusters
    route: PackedResource
    layer: PackedLayer  # the route over the cluster layer: what its sidecars share


def _shared(config: SharedConfig, clusters: _Clusters, route: PackedResource) -> _Shared:
    version = clusters.layer.version
    routes = MappingProxyType({ROUTE_TYPE: MappingProxyType({route.name: route})})
    layer = PackedLayer(version, routes, parent=clusters.layer)
    return _Shared(config=config, clusters=clusters, route=route, layer=layer)


@dataclass(frozen=True, slots=True)
class _Earlier:
    """The previous snapshot's entries, kept after an endpoints-only change."""

    snapshot: MeshSnapshot
    shared: dict[Hashable, asyncio.Future[_Shared]]
    configs: dict[Hashable, asyncio.Future[PackedConfig]]


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
        self._clusters: dict[str, asyncio.Future[_Clusters]] = {}
        self._earlier: _Earlier | None = None

    def reset(self, snapshot: MeshSnapshot) -> None:
        """Make ``snapshot`` the current one; forget the previous snapshot's entries.

        After an endpoints-only change the previous shared parts are kept for refreshing.
        """
        previous = self._current
        self._earlier = None
        if previous is not None and snapshot.change_from(previous) == "endpoints":
            self._earlier = _Earlier(previous, self._shared, self._configs)
        self._current = snapshot
        self._configs = {}
        self._shared = {}
        self._clusters = {}

    def size(self) -> int:
        """How many complete configs are cached for the current snapshot."""
        return len(self._configs)

    async def get(self, snapshot: MeshSnapshot, proxy: Proxy) -> PackedConfig:
        """``proxy``'s packed config at ``snapshot``; raises what generation raised."""
        try:
            if snapshot is not self._current:
                return await self._in_worker(self._uncached, snapshot, proxy)
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
            entry = _shared_future(self._shared_part(snapshot, proxy))
            self._shared[key] = entry
        else:
            self._metrics.generations.add(1, {"result": "shared"})
        shared = await asyncio.shield(entry)
        earlier = self._earlier_config(proxy)
        if earlier is not None:  # its own resources do not depend on endpoints: keep them
            own = earlier.own.relabeled(snapshot.version)
            routed = earlier.shared is not None and ROUTE_TYPE in earlier.shared.resources
            layer = shared.layer if routed else shared.clusters.layer
            return PackedConfig(version=snapshot.version, own=own, shared=layer)
        return await self._in_worker(self._proxy_config, snapshot, proxy, shared)

    async def _shared_part(self, snapshot: MeshSnapshot, proxy: Proxy) -> _Shared:
        earlier = self._earlier_shared(proxy)
        translation = self._translation
        if earlier is not None:
            before = earlier.clusters
            clusters = await self._cluster_part(
                before.config.key.partition("|")[2],
                lambda: self._in_worker(self._refresh_clusters, snapshot, before),
            )
            config = translation.refresh_endpoints(
                snapshot, proxy, earlier.config, clusters=clusters.config
            )
            return _shared(config, clusters, earlier.route)
        outbound = await self._in_worker(translation.outbound_scope, snapshot, proxy)
        clusters = await self._cluster_part(
            outbound.cluster_digest,
            lambda: self._in_worker(self._generate_clusters, snapshot, outbound),
        )
        return await self._in_worker(self._generate_shared, snapshot, proxy, outbound, clusters)

    async def _cluster_part(
        self, digest: str, make: Callable[[], Coroutine[Any, Any, _Clusters]]
    ) -> _Clusters:
        entry = self._clusters.get(digest)
        if entry is None:
            entry = _shared_future(make())
            self._clusters[digest] = entry
        return await asyncio.shield(entry)

    async def _in_worker(self, work: Callable[..., _T], *args: object) -> _T:
        async with self._semaphore:
            started = time.perf_counter()
            result = await asyncio.to_thread(work, *args)
            self._metrics.generation_time.record(time.perf_counter() - started)
            return result

    def _earlier_shared(self, proxy: Proxy) -> _Shared | None:
        """The previous snapshot's finished shared part of ``proxy``'s scope, if reusable."""
        earlier = self._earlier
        if earlier is None:
            return None
        return _finished(earlier.shared.get(self._translation.shared_key(earlier.snapshot, proxy)))

    def _earlier_config(self, proxy: Proxy) -> PackedConfig | None:
        """The previous snapshot's finished config of ``proxy``'s scope, if reusable."""
        earlier = self._earlier
        if earlier is None:
            return None
        return _finished(earlier.configs.get(self._translation.scope_key(earlier.snapshot, proxy)))

    def _generate_clusters(self, snapshot: MeshSnapshot, outbound: OutboundScope) -> _Clusters:
        with _logged("generating clusters", snapshot):
            config = self._translation.generate_clusters(snapshot, outbound)
        return _Clusters(
            config=config, layer=pack_layer(_as_proxy_config(config), snapshot.version)
        )

    def _refresh_clusters(self, snapshot: MeshSnapshot, earlier: _Clusters) -> _Clusters:
        with _logged("refreshing endpoints", snapshot):
            config = self._translation.refresh_clusters(snapshot, earlier.config)
        packed = {
            id(message): earlier.layer.of_type(type_url)[name]
            for type_url, messages in _as_proxy_config(earlier.config).resources.items()
            for name, message in messages.items()
        }
        layer = pack_layer(_as_proxy_config(config), snapshot.version, reuse=packed)
        return _Clusters(config=config, layer=layer)

    def _generate_shared(
        self, snapshot: MeshSnapshot, proxy: Proxy, outbound: OutboundScope, clusters: _Clusters
    ) -> _Shared:
        with _logged("generating shared config", snapshot):
            config = self._translation.generate_shared(
                snapshot, proxy, outbound=outbound, clusters=clusters.config
            )
        route = config.outbound_route
        packed = pack_resource(str(getattr(route, "name", "")), route)
        return _shared(replace(config, outbound_route=type(route)()), clusters, packed)

    def _proxy_config(self, snapshot: MeshSnapshot, proxy: Proxy, shared: _Shared) -> PackedConfig:
        with _logged(f"generating config of {proxy.id}", snapshot):
            own = self._translation.generate_own(snapshot, proxy, shared.config)
        routes = own.of_type(ROUTE_TYPE)
        stand_in = shared.config.outbound_route
        layer = shared.clusters.layer  # no outbound listener (a router): no outbound route
        if routes.get(shared.route.name) is stand_in:  # the route comes from the scope layer
            mine = {name: route for name, route in routes.items() if route is not stand_in}
            own = ProxyConfig(resources={**own.resources, ROUTE_TYPE: MappingProxyType(mine)})
            layer = shared.layer
        own_layer = pack_layer(own, snapshot.version)
        return PackedConfig(version=snapshot.version, own=own_layer, shared=layer)

    def _uncached(self, snapshot: MeshSnapshot, proxy: Proxy) -> PackedConfig:
        """``proxy``'s config at a snapshot that is not current: nothing shared or cached."""
        translation = self._translation
        with _logged(f"generating config of {proxy.id}", snapshot):
            outbound = translation.outbound_scope(snapshot, proxy)
            clusters = translation.generate_clusters(snapshot, outbound)
            shared = translation.generate_shared(
                snapshot, proxy, outbound=outbound, clusters=clusters
            )
            own = translation.generate_own(snapshot, proxy, shared)
        return PackedConfig(
            version=snapshot.version,
            own=pack_layer(own, snapshot.version),
            shared=pack_layer(_as_proxy_config(clusters), snapshot.version),
        )


def _finished(entry: asyncio.Future[_T] | None) -> _T | None:
    """The result of a finished, successful entry; else None."""
    if entry is None or not entry.done() or entry.cancelled() or entry.exception():
        return None
    return entry.result()


def _as_proxy_config(clusters: ClusterConfig) -> ProxyConfig:
    return ProxyConfig(
        resources={CLUSTER_TYPE: clusters.clusters, ENDPOINT_TYPE: clusters.endpoints}
    )


@contextmanager
def _logged(what: str, snapshot: MeshSnapshot) -> Iterator[None]:
    """Log an exception of ``what`` once, with the snapshot version, and re-raise it."""
    try:
        yield
    except Exception:
        _log.exception("%s at version %s failed", what, snapshot.version)
        raise


def _shared_future(work: Coroutine[Any, Any, _T]) -> asyncio.Future[_T]:
    """Run ``work`` as a task whose error counts as seen (it is logged; waiters re-raise)."""
    future = asyncio.ensure_future(work)
    future.add_done_callback(lambda done: done.cancelled() or done.exception())
    return future
