"""CDS: outbound clusters from the plan, inbound clusters, and the catch-all clusters.

Outbound clusters are EDS over ADS (STATIC/NONE resolution), STRICT_DNS with an inline
assignment (DNS resolution) or ORIGINAL_DST (``loadBalancer.simple: PASSTHROUGH``).
DestinationRule policy maps as Istio 1.4 maps it: load balancer (LEAST_CONN is Envoy's
LEAST_REQUEST, consistent hash is RING_HASH; the hash key goes on the route), connection
pool (circuit breaker thresholds, connect timeout, TCP keepalive, and
``HttpProtocolOptions`` for requests per connection, idle timeout and HTTP/2), outlier
detection (``minHealthPercent`` is the healthy panic threshold). Client TLS (``tls``) is added
by :mod:`.tls` once the clusters are built. Inbound clusters are STATIC, to the app on
127.0.0.1. Pure functions; the returned messages are new.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.v3 import percent_pb2

from services.pilot.core.model import InboundPort
from services.pilot.core.registry import Endpoint, ServicePort
from services.pilot.core.xds import naming, protos
from services.pilot.core.xds.endpoints import load_assignment, locality_endpoints
from services.pilot.core.xds.plan import EffectivePolicy, PlannedCluster
from services.pilot.core.xds.problems import Problems
from shared.config.mesh import MeshConfigSpec
from shared.config.networking_destinationrule import (
    ConnectionPoolSettings,
    LoadBalancerSettings,
    OutlierDetection,
)

HTTP_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
LOCALHOST = "127.0.0.1"
_HTTP2_PROTOCOLS = frozenset({"HTTP2", "GRPC", "GRPC-WEB"})
_Cluster = cluster_pb2.Cluster
_SIMPLE_LB = {
    "ROUND_ROBIN": _Cluster.ROUND_ROBIN,
    "LEAST_CONN": _Cluster.LEAST_REQUEST,
    "RANDOM": _Cluster.RANDOM,
}


def build_clusters(
    plan: Mapping[str, PlannedCluster], mesh: MeshConfigSpec, problems: Problems
) -> dict[str, cluster_pb2.Cluster]:
    """Every planned outbound cluster plus PassthroughCluster, by name."""
    clusters: dict[str, cluster_pb2.Cluster] = {}
    for name, planned in plan.items():
        with problems.guard(f"{planned.service.source} cluster {name}"):
            clusters[name] = outbound_cluster(planned, mesh)
    clusters[naming.PASSTHROUGH_CLUSTER] = _passthrough(mesh)
    return clusters


def outbound_cluster(planned: PlannedCluster, mesh: MeshConfigSpec) -> cluster_pb2.Cluster:
    """One outbound cluster with its DestinationRule policy applied."""
    cluster = _Cluster(name=planned.name)
    discovery = planned.discovery
    if discovery == "EDS":
        cluster.type = _Cluster.EDS
        cluster.eds_cluster_config.eds_config.CopyFrom(protos.ads_source())
        cluster.eds_cluster_config.service_name = planned.name
    elif discovery == "STRICT_DNS":
        cluster.type = _Cluster.STRICT_DNS
        cluster.dns_lookup_family = _Cluster.V4_ONLY
        cluster.load_assignment.CopyFrom(load_assignment(planned))
    else:
        _original_destination(cluster)
    _apply_policy(cluster, planned.policy, planned.port, mesh)
    return cluster


def inbound_cluster(inbound: InboundPort, mesh: MeshConfigSpec) -> cluster_pb2.Cluster:
    """``inbound|port||host``: STATIC, to the app's port on 127.0.0.1."""
    name = naming.inbound_cluster(inbound.port, inbound.service)
    port = ServicePort(name=inbound.name, number=inbound.app_port, protocol=inbound.protocol)
    cluster = _Cluster(
        name=name,
        type=_Cluster.STATIC,
        load_assignment=endpoint_pb2.ClusterLoadAssignment(
            cluster_name=name,
            endpoints=locality_endpoints((Endpoint(address=LOCALHOST),), port, {}),
        ),
    )
    cluster.connect_timeout.CopyFrom(protos.duration(mesh.connect_timeout))
    options = http_protocol_options_pb2.HttpProtocolOptions()
    if inbound.protocol in _HTTP2_PROTOCOLS:
        options.explicit_http_config.http2_protocol_options.SetInParent()
    _set_http_options(cluster, options)
    return cluster


def _passthrough(mesh: MeshConfigSpec) -> cluster_pb2.Cluster:
    """Istio's PassthroughCluster: to the original destination (header-addressed here)."""
    cluster = _Cluster(name=naming.PASSTHROUGH_CLUSTER)
    cluster.connect_timeout.CopyFrom(protos.duration(mesh.connect_timeout))
    _original_destination(cluster)
    return cluster


def _original_destination(cluster: cluster_pb2.Cluster) -> None:
    """No iptables in the local model: the destination comes from x-envoy-original-dst-host."""
    cluster.type = _Cluster.ORIGINAL_DST
    cluster.lb_policy = _Cluster.CLUSTER_PROVIDED
    cluster.original_dst_lb_config.use_http_header = True


def _apply_policy(
    cluster: cluster_pb2.Cluster, policy: EffectivePolicy, port: ServicePort, mesh: MeshConfigSpec
) -> None:
    pool = policy.connection_pool
    tcp = pool.tcp if pool is not None else None
    timeout = tcp.connect_timeout if tcp is not None and tcp.connect_timeout else None
    cluster.connect_timeout.CopyFrom(protos.duration(timeout or mesh.connect_timeout))
    if policy.load_balancer is not None and cluster.type != _Cluster.ORIGINAL_DST:
        _load_balancer(cluster, policy.load_balancer)
    options = http_protocol_options_pb2.HttpProtocolOptions()
    if port.protocol in _HTTP2_PROTOCOLS:
        options.explicit_http_config.http2_protocol_options.SetInParent()
    if pool is not None:
        _connection_pool(cluster, pool)
        if pool.http is not None and port.is_http:
            _http_pool(options, pool)
    _set_http_options(cluster, options)
    if policy.outlier_detection is not None:
        _outlier_detection(cluster, policy.outlier_detection)


def _set_http_options(
    cluster: cluster_pb2.Cluster, options: http_protocol_options_pb2.HttpProtocolOptions
) -> None:
    """Attach HttpProtocolOptions when anything is set (HTTP/1.1 unless HTTP/2 was chosen)."""
    if not options.ListFields():
        return
    if not options.HasField("explicit_http_config"):
        options.explicit_http_config.http_protocol_options.SetInParent()
    cluster.typed_extension_protocol_options[HTTP_OPTIONS_KEY].CopyFrom(protos.pack(options))


def _load_balancer(cluster: cluster_pb2.Cluster, balancer: LoadBalancerSettings) -> None:
    if balancer.consistent_hash is not None:
        cluster.lb_policy = _Cluster.RING_HASH
        ring = balancer.consistent_hash.minimum_ring_size
        if ring:
            cluster.ring_hash_lb_config.minimum_ring_size.value = ring
    elif balancer.simple in _SIMPLE_LB:
        cluster.lb_policy = _SIMPLE_LB[balancer.simple]


def _connection_pool(cluster: cluster_pb2.Cluster, pool: ConnectionPoolSettings) -> None:
    thresholds = circuit_breaker_pb2.CircuitBreakers.Thresholds()
    tcp, http = pool.tcp, pool.http
    limits = [(thresholds.max_connections, tcp.max_connections if tcp is not None else None)]
    if http is not None:
        limits += [
            (thresholds.max_pending_requests, http.http1_max_pending_requests),
            (thresholds.max_requests, http.http2_max_requests),
            (thresholds.max_retries, http.max_retries),
        ]
    for field, value in limits:
        if value:
            field.value = value
    if thresholds.ListFields():
        cluster.circuit_breakers.thresholds.append(thresholds)
    keepalive = tcp.tcp_keepalive if tcp is not None else None
    if keepalive is not None:
        upstream = cluster.upstream_connection_options.tcp_keepalive
        upstream.SetInParent()
        if keepalive.probes:
            upstream.keepalive_probes.value = keepalive.probes
        if keepalive.time:
            upstream.keepalive_time.value = _whole_seconds(keepalive.time)
        if keepalive.interval:
            upstream.keepalive_interval.value = _whole_seconds(keepalive.interval)


def _http_pool(
    options: http_protocol_options_pb2.HttpProtocolOptions, pool: ConnectionPoolSettings
) -> None:
    http = pool.http
    assert http is not None
    if http.max_requests_per_connection:
        options.common_http_protocol_options.max_requests_per_connection.value = (
            http.max_requests_per_connection
        )
    if http.idle_timeout:
        options.common_http_protocol_options.idle_timeout.CopyFrom(
            protos.duration(http.idle_timeout)
        )
    if http.h2_upgrade_policy == "UPGRADE":
        options.explicit_http_config.http2_protocol_options.SetInParent()


def _outlier_detection(cluster: cluster_pb2.Cluster, outlier: OutlierDetection) -> None:
    out = cluster.outlier_detection
    out.SetInParent()
    if outlier.consecutive_errors:  # Istio 1.4's deprecated field counts gateway errors
        out.consecutive_gateway_failure.value = outlier.consecutive_errors
        out.enforcing_consecutive_gateway_failure.value = 100
        out.enforcing_consecutive_5xx.value = 0
    for count, enforcing, value in (
        (
            out.consecutive_gateway_failure,
            out.enforcing_consecutive_gateway_failure,
            outlier.consecutive_gateway_errors,
        ),
        (out.consecutive_5xx, out.enforcing_consecutive_5xx, outlier.consecutive_5xx_errors),
    ):
        if value is not None:
            count.value = value
            enforcing.value = 100 if value > 0 else 0
    if outlier.interval:
        out.interval.CopyFrom(protos.duration(outlier.interval))
    if outlier.base_ejection_time:
        out.base_ejection_time.CopyFrom(protos.duration(outlier.base_ejection_time))
    if outlier.max_ejection_percent is not None:
        out.max_ejection_percent.value = outlier.max_ejection_percent
    if outlier.min_health_percent is not None:
        cluster.common_lb_config.healthy_panic_threshold.CopyFrom(
            percent_pb2.Percent(value=float(outlier.min_health_percent))
        )


def _whole_seconds(value: timedelta) -> int:
    return max(1, int(value.total_seconds()))
