"""Envoy configuration for one proxy: a pure function of a MeshSnapshot and a Proxy.

API (what the ADS server calls)::

    services = services_from_service_entries(resources)             # core/registry.py
    snapshot = MeshSnapshot.build(resources, services, version="v7")  # core/snapshot.py
    snapshot.change_from(previous)      # "full" | "endpoints" | "none"
    config = generate(snapshot, proxy)  # -> model.ProxyConfig, CDS/EDS/LDS/RDS by name
    scope_key(snapshot, proxy)          # equal keys -> equal complete ProxyConfig
    shared_key(snapshot, proxy)         # equal keys -> equal SharedConfig
    outbound = outbound_scope(snapshot, proxy)  # .cluster_digest: equal -> equal ClusterConfig
    clusters = generate_clusters(snapshot, outbound)
    shared = generate_shared(snapshot, proxy, outbound=outbound, clusters=clusters)
    own = generate_own(snapshot, proxy, shared)  # what generate() adds to shared
    refresh_clusters(snapshot, clusters)         # ClusterConfig after an endpoints-only change
    refresh_endpoints(snapshot, proxy, shared)   # SharedConfig after an endpoints-only change
    cache = SharedCache()               # thread-safe: cache.generate(snapshot, proxy)
    missing_clusters(config)            # route targets without a cluster (diagnostics)

(:class:`ClusterConfig` and its two functions live in :mod:`.cluster_config`.) Three levels
of sharing. :func:`scope_key` may key whole ProxyConfigs: it includes the
proxy's own ports, so catalog v1 and v2 in one namespace get different keys (their inbound
listeners differ). :func:`shared_key` keys :class:`SharedConfig`, what proxies of one
namespace and Sidecar share: the ``outbound_http`` routes (their short host names depend
on the namespace) and a :class:`ClusterConfig`: the outbound clusters and their EDS load
assignments (by far the biggest part). That one depends on the namespace only through what
the scope sees and which DestinationRule applies, so it is keyed by
:attr:`OutboundScope.cluster_digest` and usually shared by every namespace of a mesh
without Sidecars; its :class:`RouteMemo` also lets those namespaces share the routes built
for each VirtualService. ``generate(snapshot, proxy, shared=...)`` reuses a shared part;
``SharedCache().generate`` has the signature of :func:`generate` and reuses both levels.
Generated messages are never mutated afterwards; treat them as read-only.

After an endpoints-only change (``snapshot.change_from(previous) == "endpoints"``) the
clusters and routes of a scope are unchanged: :func:`refresh_clusters` turns the earlier
snapshot's :class:`ClusterConfig` into the new one by rebuilding only the load assignments
of services whose endpoints changed, keeping every other message (the same objects, so
their packed forms can be reused); :func:`refresh_endpoints` does the same for a
:class:`SharedConfig`, keeping its routes. The results equal :func:`generate_shared` at the
new snapshot.

Mixer mode (MeshConfig ``mixerCheckServer``/``mixerReportServer``) adds the Mixer
clusters, filters, access logs and inbound route policy of :mod:`.mixer_filters`.

Mutual TLS (:mod:`.tls`): for a proxy with a workload identity (``proxy.tls``), inbound
listeners accept what PeerAuthentication allows (:mod:`.peer_authn`) and outbound
clusters originate mutual TLS per DestinationRule ``tls`` or auto mTLS.

Errors: nothing here raises on config Galley accepts. Each resource is translated under
:meth:`Problems.guard`; one that fails is skipped and reported to ``report`` (default:
logged) as an internal :class:`Problem`; known limitations are reported as non-internal
problems. Every function is safe to call from any thread or task concurrently.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import TypeVar

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from google.protobuf.message import Message

from services.pilot.core.model import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    Proxy,
    ProxyConfig,
)
from services.pilot.core.registry import HTTP_PROTOCOLS
from services.pilot.core.snapshot import MESH_GATEWAY, MeshSnapshot
from services.pilot.core.xds import naming
from services.pilot.core.xds.cluster_config import (
    ClusterConfig,
    frozen_by_name,
    generate_clusters,
    refresh_clusters,
)
from services.pilot.core.xds.clusters import inbound_cluster
from services.pilot.core.xds.http_route import RouteContext
from services.pilot.core.xds.listeners import (
    gateway_listeners,
    inbound_listener,
    is_http_server,
    outbound_listener,
)
from services.pilot.core.xds.mixer_filters import mixer_plan
from services.pilot.core.xds.peer_authn import inbound_mtls
from services.pilot.core.xds.plan import (
    OutboundScope,
    PlannedCluster,
    outbound_scope,
)
from services.pilot.core.xds.problems import Problem, Problems, ProblemSink
from services.pilot.core.xds.routes import (
    gateway_route_config,
    inbound_route_config,
    outbound_route_config,
)
from services.pilot.core.xds.scope import gateway_servers, scope_key, shared_key
from services.pilot.core.xds.tls import secure_inbound

__all__ = [
    "ClusterConfig",
    "OutboundScope",
    "SharedCache",
    "SharedConfig",
    "generate",
    "generate_clusters",
    "generate_own",
    "generate_shared",
    "missing_clusters",
    "outbound_scope",
    "refresh_clusters",
    "refresh_endpoints",
    "scope_key",
    "shared_key",
]

_V = TypeVar("_V")


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedConfig:
    """The scope-dependent output: shareable by every proxy with the same ``key``.

    ``outbound_route`` belongs to this scope; ``cluster_config`` may be shared with scopes
    of other namespaces. ``problems`` holds both parts' problems.
    """

    key: str
    outbound: OutboundScope
    cluster_config: ClusterConfig
    outbound_route: Message
    problems: tuple[Problem, ...]

    @property
    def clusters(self) -> Mapping[str, Message]:
        """The outbound clusters, by name."""
        return self.cluster_config.clusters

    @property
    def endpoints(self) -> Mapping[str, Message]:
        """The load assignments of the EDS clusters, by cluster name."""
        return self.cluster_config.endpoints

    @property
    def plan(self) -> Mapping[str, PlannedCluster]:
        """The planned outbound clusters the resources were built from."""
        return self.cluster_config.plan


def generate_shared(
    snapshot: MeshSnapshot,
    proxy: Proxy,
    *,
    outbound: OutboundScope | None = None,
    clusters: ClusterConfig | None = None,
    report: ProblemSink | None = None,
) -> SharedConfig:
    """Outbound clusters, endpoints and ``outbound_http`` routes for the proxy's scope.

    ``outbound``, when given, must be ``outbound_scope(snapshot, proxy)``; ``clusters``
    must come from :func:`generate_clusters` for a scope with its ``cluster_digest`` at
    this snapshot. Both are computed when omitted.
    """
    if outbound is None:
        outbound = outbound_scope(snapshot, proxy)
    if clusters is None:
        clusters = generate_clusters(snapshot, outbound, report=report)
    problems = Problems(report)
    scope = outbound.scope
    context = RouteContext(
        snapshot=snapshot,
        gateway=MESH_GATEWAY,
        port=None,
        proxy_namespace=scope.namespace,
        proxy_labels=scope.labels,
        clusters=clusters.plan,
    )
    outbound_route: Message = route_pb2.RouteConfiguration(name=naming.OUTBOUND_HTTP)
    with problems.guard(f"route configuration {naming.OUTBOUND_HTTP}"):
        outbound_route = outbound_route_config(scope, context, problems, memo=clusters.routes)
    return SharedConfig(
        key=scope.key,
        outbound=outbound,
        cluster_config=clusters,
        outbound_route=outbound_route,
        problems=tuple(dict.fromkeys((*clusters.problems, *problems.found))),
    )


def refresh_endpoints(
    snapshot: MeshSnapshot,
    proxy: Proxy,
    earlier: SharedConfig,
    *,
    clusters: ClusterConfig | None = None,
    report: ProblemSink | None = None,
) -> SharedConfig:
    """``earlier`` (same scope, equal config) with the endpoints of ``snapshot``.

    The route configuration is kept; ``clusters``, when given, must be
    ``refresh_clusters(snapshot, earlier.cluster_config)`` (computed when omitted).
    """
    if clusters is None:
        clusters = refresh_clusters(snapshot, earlier.cluster_config, report=report)
    return replace(
        earlier,
        key=shared_key(snapshot, proxy),
        cluster_config=clusters,
        problems=tuple(dict.fromkeys((*clusters.problems, *earlier.problems))),
    )


def generate(
    snapshot: MeshSnapshot,
    proxy: Proxy,
    *,
    shared: SharedConfig | None = None,
    report: ProblemSink | None = None,
) -> ProxyConfig:
    """Every CDS/EDS/LDS/RDS resource for ``proxy`` (see the module docstring).

    ``shared``, when given, must come from :func:`generate_shared` for a proxy with the
    same :func:`shared_key` at this snapshot; it is computed when omitted.
    """
    if shared is None:
        shared = generate_shared(snapshot, proxy, report=report)
    own = generate_own(snapshot, proxy, shared, report=report)
    return ProxyConfig(
        resources=MappingProxyType(
            {
                CLUSTER_TYPE: frozen_by_name({**shared.clusters, **own.of_type(CLUSTER_TYPE)}),
                ENDPOINT_TYPE: shared.endpoints,
                LISTENER_TYPE: own.of_type(LISTENER_TYPE),
                ROUTE_TYPE: own.of_type(ROUTE_TYPE),
            }
        )
    )


def generate_own(
    snapshot: MeshSnapshot,
    proxy: Proxy,
    shared: SharedConfig,
    *,
    report: ProblemSink | None = None,
) -> ProxyConfig:
    """What :func:`generate` adds to ``shared``: the proxy's own resources.

    Clusters: Mixer's and the inbound ones (they replace shared clusters of the same name);
    listeners and routes: all of them (``outbound_http`` is ``shared.outbound_route``, the
    same message); no endpoints (they are all in ``shared``).
    """
    problems = Problems(report)
    mixer = mixer_plan(snapshot)
    mixer.report(problems)
    clusters: dict[str, Message] = dict(mixer.clusters)
    listeners: dict[str, Message] = {}
    routes: dict[str, Message] = {}
    peer_mtls = inbound_mtls(snapshot, proxy) if proxy.tls else None
    outbound = outbound_listener(proxy, mixer.outbound)
    if outbound is not None:
        listeners[outbound.name] = outbound
        routes[naming.OUTBOUND_HTTP] = shared.outbound_route
    for inbound in proxy.inbound:
        with problems.guard(f"proxy {proxy.id} inbound port {inbound.port}"):
            cluster = inbound_cluster(inbound, snapshot.mesh)
            clusters[cluster.name] = cluster
            listener = inbound_listener(proxy, inbound, mixer.inbound)
            if peer_mtls is not None:
                secure_inbound(listener, peer_mtls.at(inbound.port), snapshot.mesh)
            listeners[listener.name] = listener
            if inbound.protocol in HTTP_PROTOCOLS:
                policy = mixer.inbound_route(proxy, inbound)
                route = inbound_route_config(
                    inbound,
                    typed_per_filter_config=policy.typed_per_filter_config,
                    rate_limits=policy.rate_limits,
                )
                routes[route.name] = route
    servers = gateway_servers(snapshot, proxy)
    listeners.update(gateway_listeners(proxy, servers, problems, mixer.outbound))
    context = RouteContext(
        snapshot=snapshot,
        gateway=MESH_GATEWAY,
        port=None,
        proxy_namespace=proxy.namespace,
        proxy_labels=proxy.labels,
        clusters=shared.plan,
    )
    for port, port_servers in servers.items():
        http = [server for server in port_servers if is_http_server(server)]
        if not http:
            continue
        with problems.guard(f"route configuration {naming.gateway_route(port)}"):
            route = gateway_route_config(port, http, context, problems)
            routes[route.name] = route
    return ProxyConfig(
        resources=MappingProxyType(
            {
                CLUSTER_TYPE: frozen_by_name(clusters),
                LISTENER_TYPE: frozen_by_name(listeners),
                ROUTE_TYPE: frozen_by_name(routes),
            }
        )
    )


class SharedCache:
    """A thread-safe memo of :func:`generate_shared` by :func:`shared_key`.

    Cluster parts are memoized too, by version and cluster digest, so scopes of several
    namespaces that plan the same clusters share them (and their route memo). Keys include
    the snapshot version, so entries of old snapshots are simply never hit again; the
    oldest entries are dropped beyond ``max_entries``. Two threads missing the same key may
    both generate it (the results are equal); the first one stored wins.
    """

    def __init__(self, *, max_entries: int = 256, report: ProblemSink | None = None) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self._max_entries = max_entries
        self._report = report
        self._lock = threading.Lock()
        self._entries: dict[str, SharedConfig] = {}
        self._clusters: dict[str, ClusterConfig] = {}

    def shared(self, snapshot: MeshSnapshot, proxy: Proxy) -> SharedConfig:
        """The shared part for ``proxy``, generated once per :func:`shared_key`."""
        key = shared_key(snapshot, proxy)
        found = self._lookup(self._entries, key)
        if found is not None:
            return found
        outbound = outbound_scope(snapshot, proxy)
        cluster_key = f"{snapshot.version}|{outbound.cluster_digest}"
        clusters = self._lookup(self._clusters, cluster_key)
        if clusters is None:
            made = generate_clusters(snapshot, outbound, report=self._report)
            clusters = self._store(self._clusters, cluster_key, made)
        shared = generate_shared(
            snapshot, proxy, outbound=outbound, clusters=clusters, report=self._report
        )
        return self._store(self._entries, key, shared)

    def generate(self, snapshot: MeshSnapshot, proxy: Proxy) -> ProxyConfig:
        """:func:`generate`, reusing the cached shared part."""
        return generate(snapshot, proxy, shared=self.shared(snapshot, proxy), report=self._report)

    def _lookup(self, entries: dict[str, _V], key: str) -> _V | None:
        with self._lock:
            return entries.get(key)

    def _store(self, entries: dict[str, _V], key: str, made: _V) -> _V:
        with self._lock:
            kept = entries.setdefault(key, made)
            while len(entries) > self._max_entries:
                del entries[next(iter(entries))]
        return kept


def missing_clusters(config: ProxyConfig) -> frozenset[str]:
    """Clusters that routes send (or mirror) traffic to but CDS does not define.

    Routes to a subset no DestinationRule defines are the usual cause (Envoy answers 503
    for them, as in Istio); a consistency check before publishing can report these.
    """
    defined = set(config.of_type(CLUSTER_TYPE))
    targets: set[str] = set()
    for route_config in config.of_type(ROUTE_TYPE).values():
        assert isinstance(route_config, route_pb2.RouteConfiguration)
        for host in route_config.virtual_hosts:
            for route in host.routes:
                targets.update(_route_targets(route))
    return frozenset(targets - defined)


def _route_targets(route: rc.Route) -> set[str]:
    if not route.HasField("route"):
        return set()
    action = route.route
    names = {cluster.name for cluster in action.weighted_clusters.clusters}
    names.update(mirror.cluster for mirror in action.request_mirror_policies)
    if action.cluster:
        names.add(action.cluster)
    return names
