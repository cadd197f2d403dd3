"""The outbound cluster plan: which clusters a scope gets, and the policy of each.

One :class:`PlannedCluster` per visible service port (``outbound|port||host``) and per
DestinationRule subset (``outbound|port|subset|host``), with the traffic policy Istio
would apply (``MergeTrafficPolicy``: subset fields override the host-wide ones, and a
matching ``portLevelSettings`` entry replaces all four policy parts, not merging them).
CDS, EDS and RDS are all derived from the same plan, so they always agree.

:func:`outbound_scope` pairs a proxy's scope with the DestinationRule chosen for each
visible service and names the result with :attr:`OutboundScope.cluster_digest`: scopes of
different namespaces (or Sidecars) that see the same services under the same rules plan the
same clusters, so the clusters and their endpoints can be built once for all of them. Pure
functions; values are immutable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from services.pilot.core.model import Proxy
from services.pilot.core.registry import Service, ServicePort
from services.pilot.core.snapshot import DestinationPolicy, MeshSnapshot
from services.pilot.core.xds import naming
from services.pilot.core.xds.problems import Problems
from services.pilot.core.xds.scope import ProxyScope, proxy_scope
from shared.config.networking_destinationrule import (
    ClientTLSSettings,
    ConnectionPoolSettings,
    LoadBalancerSettings,
    OutlierDetection,
    PortTrafficPolicy,
    TrafficPolicy,
)

Discovery = Literal["EDS", "STRICT_DNS", "ORIGINAL_DST"]
_ALL: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class EffectivePolicy:
    """The traffic policy parts that apply to one cluster (None: Envoy's defaults)."""

    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannedCluster:
    """One outbound cluster: its service port, subset selector and policy."""

    name: str
    service: Service
    port: ServicePort
    subset: str
    selector: Mapping[str, str]
    policy: EffectivePolicy

    @property
    def discovery(self) -> Discovery:
        """How Envoy finds the endpoints of this cluster."""
        balancer = self.policy.load_balancer
        if balancer is not None and balancer.simple == "PASSTHROUGH":
            return "ORIGINAL_DST"
        return "EDS" if self.service.uses_eds else "STRICT_DNS"


def effective_policy(
    top: TrafficPolicy | None, subset: TrafficPolicy | None, port: int
) -> EffectivePolicy:
    """Istio's merge of a host-wide policy, a subset's policy and port-level settings."""
    base = _at_port(top, port)
    if subset is None:
        return base
    override = _port_level(subset, port)
    if override is not None:
        return _parts(override)
    return EffectivePolicy(
        load_balancer=subset.load_balancer or base.load_balancer,
        connection_pool=subset.connection_pool or base.connection_pool,
        outlier_detection=subset.outlier_detection or base.outlier_detection,
        tls=subset.tls or base.tls,
    )


@dataclass(frozen=True, slots=True)
class OutboundScope:
    """A proxy's scope, the DestinationRule of each visible service, and what they plan.

    ``rules[i]`` applies to ``scope.services[i]``. ``cluster_digest`` is equal for two
    outbound scopes of one snapshot exactly when they plan equal clusters: it names the
    visible services, their rules and whether the proxy originates mutual TLS.
    """

    scope: ProxyScope
    rules: tuple[DestinationPolicy | None, ...]
    tls: bool
    cluster_digest: str


def outbound_scope(snapshot: MeshSnapshot, proxy: Proxy) -> OutboundScope:
    """``proxy``'s scope with the DestinationRule Istio picks for each visible service."""
    scope = proxy_scope(snapshot, proxy)
    rules = tuple(
        snapshot.destination_rule(
            service.hostname, proxy_namespace=scope.namespace, service_namespace=service.namespace
        )
        for service in scope.services
    )
    identity = hashlib.sha256(b"tls" if proxy.tls else b"plain")
    for service, rule in zip(scope.services, rules, strict=True):
        chosen = "-" if rule is None else f"{rule.namespace}/{rule.host}"
        identity.update(f"|{service.hostname}={chosen}".encode())
    return OutboundScope(
        scope=scope, rules=rules, tls=proxy.tls, cluster_digest=identity.hexdigest()[:16]
    )


def plan_outbound(outbound: OutboundScope, problems: Problems) -> dict[str, PlannedCluster]:
    """Every outbound cluster of a scope, by name, in service then port order."""
    planned: dict[str, PlannedCluster] = {}
    for service, rule in zip(outbound.scope.services, outbound.rules, strict=True):
        with problems.guard(service.source or service.hostname):
            for cluster in _service_clusters(service, rule):
                planned.setdefault(cluster.name, cluster)
    return planned


def _service_clusters(service: Service, rule: DestinationPolicy | None) -> list[PlannedCluster]:
    top = rule.traffic_policy if rule is not None else None
    clusters = []
    for port in service.ports:
        clusters.append(
            PlannedCluster(
                name=naming.outbound_cluster(port.number, service.hostname),
                service=service,
                port=port,
                subset="",
                selector=_ALL,
                policy=effective_policy(top, None, port.number),
            )
        )
        for subset in rule.subsets if rule is not None else ():
            clusters.append(
                PlannedCluster(
                    name=naming.outbound_cluster(port.number, service.hostname, subset.name),
                    service=service,
                    port=port,
                    subset=subset.name,
                    selector=MappingProxyType(dict(subset.labels)),
                    policy=effective_policy(top, subset.traffic_policy, port.number),
                )
            )
    return clusters


def _at_port(policy: TrafficPolicy | None, port: int) -> EffectivePolicy:
    if policy is None:
        return EffectivePolicy()
    override = _port_level(policy, port)
    return _parts(override if override is not None else policy)


def _port_level(policy: TrafficPolicy, port: int) -> PortTrafficPolicy | None:
    return next(
        (
            settings
            for settings in policy.port_level_settings
            if settings.port is not None and settings.port.number == port
        ),
        None,
    )


def _parts(policy: TrafficPolicy | PortTrafficPolicy) -> EffectivePolicy:
    return EffectivePolicy(
        load_balancer=policy.load_balancer,
        connection_pool=policy.connection_pool,
        outlier_detection=policy.outlier_detection,
        tls=policy.tls,
    )
