"""CDS, EDS and LDS: clusters with DestinationRule policy, endpoints, and listeners."""

from __future__ import annotations

from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2

from services.pilot.core.model import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    Proxy,
    ProxyConfig,
    node_id,
    parse_proxy,
)
from services.pilot.core.registry import services_from_service_entries
from services.pilot.core.snapshot import MeshSnapshot
from services.pilot.core.xds import naming
from services.pilot.core.xds.clusters import HTTP_OPTIONS_KEY
from services.pilot.core.xds.generate import generate
from services.pilot.core.xds.plan import effective_policy
from shared.config import parse_yaml
from shared.config.networking_destinationrule import TrafficPolicy

Cluster = cluster_pb2.Cluster
CONFIG = """
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {name: catalog, namespace: shop}
spec:
  hosts: [catalog]
  resolution: STATIC
  ports:
    - {number: 8080, name: http, protocol: HTTP}
    - {number: 9090, name: grpc, protocol: GRPC}
  endpoints:
    - {address: 127.0.0.1, ports: {http: 18081}, labels: {version: v1}, weight: 4,
       locality: eu/west/a}
    - {address: 127.0.0.1, ports: {http: 18082}, labels: {version: v2}}
    - {address: "unix:///run/catalog.sock", labels: {version: v3}}
---
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {name: payments, namespace: shop}
spec:
  hosts: [payments.example.com]
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {name: mirror, namespace: shop}
spec:
  hosts: [mirror.example.com]
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: mirror-a.example.com, ports: {http: 8000}}, {address: 10.0.0.9}]
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: catalog, namespace: shop}
spec:
  host: catalog
  trafficPolicy:
    loadBalancer: {simple: LEAST_CONN}
    connectionPool:
      tcp: {maxConnections: 10, connectTimeout: 250ms}
      http: {http1MaxPendingRequests: 5, maxRetries: 2, maxRequestsPerConnection: 1}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}
    portLevelSettings:
      - port: {number: 9090}
        loadBalancer: {simple: RANDOM}
  subsets:
    - name: v1
      labels: {version: v1}
    - name: v2
      labels: {version: v2}
      trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
    - name: raw
      labels: {version: v1}
      trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}
"""


def _generate(proxy: Proxy | None = None) -> ProxyConfig:
    parsed = parse_yaml(CONFIG, "clusters.yaml")
    assert not parsed.issues, parsed.issues
    resources = parsed.resources
    snapshot = MeshSnapshot.build(resources, services_from_service_entries(resources), version="c")
    return generate(snapshot, proxy or _sidecar())


def _sidecar(**meta: Any) -> Proxy:
    return parse_proxy(node_id("sidecar", "127.0.0.1", "client", "shop"), meta)


def _cluster(config: ProxyConfig, name: str) -> Any:
    return config.of_type(CLUSTER_TYPE)[name]


def test_eds_clusters_come_over_ads_with_destination_rule_policy() -> None:
    cluster = _cluster(_generate(), "outbound|8080||catalog.shop.svc.cluster.local")
    assert cluster.type == Cluster.EDS
    assert cluster.eds_cluster_config.eds_config.HasField("ads")
    assert cluster.eds_cluster_config.service_name == cluster.name
    assert cluster.lb_policy == Cluster.LEAST_REQUEST
    assert cluster.connect_timeout.ToMilliseconds() == 250
    (limits,) = cluster.circuit_breakers.thresholds
    assert (limits.max_connections.value, limits.max_pending_requests.value) == (10, 5)
    assert limits.max_retries.value == 2
    assert not limits.HasField("max_requests")
    options = http_protocol_options_pb2.HttpProtocolOptions()
    assert cluster.typed_extension_protocol_options[HTTP_OPTIONS_KEY].Unpack(options)
    assert options.common_http_protocol_options.max_requests_per_connection.value == 1
    assert options.explicit_http_config.HasField("http_protocol_options")
    detection = cluster.outlier_detection
    assert (detection.consecutive_5xx.value, detection.enforcing_consecutive_5xx.value) == (5, 100)
    assert detection.interval.seconds == 10
    assert detection.base_ejection_time.seconds == 30


def test_subsets_override_policy_parts_and_port_level_settings_replace_them() -> None:
    config = _generate()
    v1 = _cluster(config, "outbound|8080|v1|catalog.shop.svc.cluster.local")
    v2 = _cluster(config, "outbound|8080|v2|catalog.shop.svc.cluster.local")
    assert v1.lb_policy == Cluster.LEAST_REQUEST
    assert v2.lb_policy == Cluster.ROUND_ROBIN
    assert v2.circuit_breakers.thresholds[0].max_connections.value == 10
    grpc = _cluster(config, "outbound|9090||catalog.shop.svc.cluster.local")
    assert grpc.lb_policy == Cluster.RANDOM
    assert not grpc.circuit_breakers.thresholds
    assert not grpc.HasField("outlier_detection")
    options = http_protocol_options_pb2.HttpProtocolOptions()
    assert grpc.typed_extension_protocol_options[HTTP_OPTIONS_KEY].Unpack(options)
    assert options.explicit_http_config.HasField("http2_protocol_options")
    raw = _cluster(config, "outbound|8080|raw|catalog.shop.svc.cluster.local")
    assert (raw.type, raw.lb_policy) == (Cluster.ORIGINAL_DST, Cluster.CLUSTER_PROVIDED)
    assert "outbound|8080|raw|catalog.shop.svc.cluster.local" not in config.of_type(ENDPOINT_TYPE)


def test_effective_policy_is_istio_merge_traffic_policy() -> None:
    top = TrafficPolicy.model_validate(
        {
            "loadBalancer": {"simple": "RANDOM"},
            "outlierDetection": {"interval": "1s"},
            "portLevelSettings": [{"port": {"number": 80}, "connectionPool": {"tcp": {}}}],
        }
    )
    subset = TrafficPolicy.model_validate({"loadBalancer": {"simple": "LEAST_CONN"}})
    merged = effective_policy(top, subset, 8080)
    assert merged.load_balancer is not None and merged.load_balancer.simple == "LEAST_CONN"
    assert merged.outlier_detection is top.outlier_detection
    at_80 = effective_policy(top, None, 80)
    assert (at_80.load_balancer, at_80.outlier_detection) == (None, None)
    assert at_80.connection_pool is not None
    assert effective_policy(None, None, 80).load_balancer is None


def test_dns_services_are_strict_dns_clusters_with_inline_endpoints() -> None:
    config = _generate()
    payments = _cluster(config, "outbound|443||payments.example.com")
    assert (payments.type, payments.dns_lookup_family) == (Cluster.STRICT_DNS, Cluster.V4_ONLY)
    (address,) = [
        e.endpoint.address.socket_address
        for group in payments.load_assignment.endpoints
        for e in group.lb_endpoints
    ]
    assert (address.address, address.port_value) == ("payments.example.com", 443)
    mirror = _cluster(config, "outbound|80||mirror.example.com")
    assert [
        (e.endpoint.address.socket_address.address, e.endpoint.address.socket_address.port_value)
        for group in mirror.load_assignment.endpoints
        for e in group.lb_endpoints
    ] == [("mirror-a.example.com", 8000), ("10.0.0.9", 80)]
    assert "outbound|80||mirror.example.com" not in config.of_type(ENDPOINT_TYPE)


def _endpoints(config: ProxyConfig, name: str) -> list[tuple[str, str, int, int]]:
    assignment: Any = config.of_type(ENDPOINT_TYPE)[name]
    out = []
    for group in assignment.endpoints:
        for lb in group.lb_endpoints:
            address = lb.endpoint.address
            where = address.pipe.path or address.socket_address.address
            port = address.socket_address.port_value
            out.append((group.locality.zone, where, port, lb.load_balancing_weight.value))
    return out


def test_endpoints_are_filtered_by_subset_labels_with_ports_weights_and_localities() -> None:
    config = _generate()
    assert _endpoints(config, "outbound|8080||catalog.shop.svc.cluster.local") == [
        ("", "127.0.0.1", 18082, 0),
        ("", "/run/catalog.sock", 0, 0),
        ("west", "127.0.0.1", 18081, 4),
    ]
    assert _endpoints(config, "outbound|8080|v1|catalog.shop.svc.cluster.local") == [
        ("west", "127.0.0.1", 18081, 4)
    ]
    assert _endpoints(config, "outbound|9090|v2|catalog.shop.svc.cluster.local") == [
        ("", "127.0.0.1", 9090, 0)
    ]


def _network_filter(config: ProxyConfig, listener: str) -> Any:
    found: Any = config.of_type(LISTENER_TYPE)[listener]
    return found, found.filter_chains[0].filters[0]


def test_sidecar_listeners_outbound_and_inbound() -> None:
    proxy = _sidecar(
        SPLITMESH_OUTBOUND_PORT=15001,
        SPLITMESH_INBOUND=[
            {"port": 18081, "app_port": 28081, "service": "catalog.shop.svc.cluster.local"},
            {
                "port": 19090,
                "app_port": 29090,
                "service": "catalog.shop.svc.cluster.local",
                "name": "db",
                "protocol": "TCP",
            },
        ],
    )
    config = _generate(proxy)
    listener, network = _network_filter(config, naming.OUTBOUND_HTTP)
    assert listener.address.socket_address.port_value == 15001
    manager = hcm.HttpConnectionManager()
    assert network.typed_config.Unpack(manager)
    assert manager.rds.route_config_name == naming.OUTBOUND_HTTP
    assert manager.rds.config_source.HasField("ads")
    assert [f.name for f in manager.http_filters] == [
        naming.FAULT_FILTER,
        naming.CORS_FILTER,
        naming.ROUTER_FILTER,
    ]
    listener, network = _network_filter(config, "inbound|18081")
    assert listener.address.socket_address.port_value == 18081
    assert network.typed_config.Unpack(manager)
    assert manager.rds.route_config_name == "inbound|18081"
    route = config.of_type(ROUTE_TYPE)["inbound|18081"]
    assert route.virtual_hosts[0].routes[0].route.cluster == (
        "inbound|18081||catalog.shop.svc.cluster.local"
    )
    app = _cluster(config, "inbound|18081||catalog.shop.svc.cluster.local")
    assert app.type == Cluster.STATIC
    socket = app.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address
    assert (socket.address, socket.port_value) == ("127.0.0.1", 28081)
    _, network = _network_filter(config, "inbound|19090")
    proxy_config = tcp_proxy_pb2.TcpProxy()
    assert network.typed_config.Unpack(proxy_config)
    assert proxy_config.cluster == "inbound|19090||catalog.shop.svc.cluster.local"
    assert "inbound|19090" not in config.of_type(ROUTE_TYPE)


def test_a_proxy_without_ports_gets_clusters_but_no_listeners() -> None:
    config = _generate()
    assert config.of_type(LISTENER_TYPE) == {}
    assert config.of_type(ROUTE_TYPE) == {}
    assert naming.PASSTHROUGH_CLUSTER in config.of_type(CLUSTER_TYPE)
