"""The Envoy bootstrap the agent writes: valid v3, and what Pilot reads from its node."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.extensions.resource_monitors.downstream_connections.v3 import (
    downstream_connections_pb2,  # noqa: F401 - registers the type for ParseDict
)
from envoy.extensions.upstreams.http.v3 import (
    http_protocol_options_pb2,  # noqa: F401 - registers the type for ParseDict
)
from google.protobuf import json_format, struct_pb2

from services.pilot.core.model import InboundPort as PilotInboundPort
from services.pilot.core.model import parse_proxy
from sidecar.bootstrap import SDS_CLUSTER, XDS_CLUSTER, build_bootstrap, write_bootstrap
from sidecar.node import InboundPort, WorkloadIdentity

CATALOG = WorkloadIdentity(
    name="catalog-v2",
    namespace="shop",
    service_account="catalog",
    labels={"app": "catalog", "version": "v2"},
    inbound=(
        InboundPort(port=18082, app_port=28082, service="catalog.shop.svc.cluster.local"),
        InboundPort.parse("18090:28090:catalog.shop.svc.cluster.local:grpc:grpc"),
    ),
)


def bootstrap(identity: WorkloadIdentity = CATALOG, **overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "pilot_host": "127.0.0.1",
        "pilot_port": 15010,
        "admin_port": 15000,
        "outbound_port": 15001,
        **overrides,
    }
    return build_bootstrap(identity, **options)


def as_proto(config: dict[str, Any]) -> bootstrap_pb2.Bootstrap:
    """Parse like Envoy does: an unknown or misspelt field fails."""
    return json_format.ParseDict(config, bootstrap_pb2.Bootstrap())


def test_bootstrap_is_a_valid_envoy_v3_bootstrap_with_ads_to_pilot() -> None:
    parsed = as_proto(bootstrap())
    ads = parsed.dynamic_resources.ads_config
    assert ads.api_type == ads.GRPC
    assert ads.transport_api_version == 2  # V3
    assert ads.set_node_on_first_message_only
    assert [s.envoy_grpc.cluster_name for s in ads.grpc_services] == [XDS_CLUSTER]
    assert parsed.dynamic_resources.cds_config.HasField("ads")
    assert parsed.dynamic_resources.lds_config.HasField("ads")
    (cluster,) = parsed.static_resources.clusters
    assert cluster.name == XDS_CLUSTER
    assert cluster.type == cluster.STATIC
    address = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address
    assert (address.socket_address.address, address.socket_address.port_value) == (
        "127.0.0.1",
        15010,
    )
    assert parsed.admin.address.socket_address.address == "127.0.0.1"
    assert parsed.admin.address.socket_address.port_value == 15000


def test_delta_option_selects_incremental_xds() -> None:
    ads = as_proto(bootstrap(delta=True)).dynamic_resources.ads_config
    assert ads.api_type == ads.DELTA_GRPC


def test_xds_cluster_speaks_http2_and_resolves_a_host_name_by_dns() -> None:
    config = bootstrap(pilot_host="pilot.istio-system")
    (cluster,) = config["static_resources"]["clusters"]
    assert cluster["type"] == "STRICT_DNS"
    options = cluster["typed_extension_protocol_options"]
    (http,) = options.values()
    assert "http2_protocol_options" in http["explicit_http_config"]
    as_proto(config)


def test_pilot_reads_the_identity_the_agent_writes() -> None:
    """The wire contract: the node as Envoy sends it (metadata via Struct) parses in Pilot."""
    node = bootstrap()["node"]
    metadata = struct_pb2.Struct()
    metadata.update(node["metadata"])  # numbers become floats on the wire, as from Envoy
    proxy = parse_proxy(node["id"], json_format.MessageToDict(metadata))
    assert proxy.id == "sidecar~127.0.0.1~catalog-v2.shop~shop.svc.cluster.local"
    assert (proxy.type, proxy.workload_name, proxy.namespace) == ("sidecar", "catalog-v2", "shop")
    assert proxy.service_account == "catalog"
    assert dict(proxy.labels) == {"app": "catalog", "version": "v2"}
    assert proxy.outbound_port == 15001
    assert proxy.inbound == (
        PilotInboundPort(18082, 28082, "catalog.shop.svc.cluster.local", "http", "HTTP"),
        PilotInboundPort(18090, 28090, "catalog.shop.svc.cluster.local", "grpc", "GRPC"),
    )


def test_identity_adds_the_sds_cluster_and_tells_pilot() -> None:
    with_tls = dataclasses.replace(CATALOG, tls=True)
    parsed = as_proto(bootstrap(with_tls, sds_socket=Path("/run/agent/sds.sock")))
    xds, sds = parsed.static_resources.clusters
    assert (xds.name, sds.name) == (XDS_CLUSTER, SDS_CLUSTER)
    address = sds.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address
    assert address.pipe.path == "/run/agent/sds.sock"
    node = bootstrap(with_tls)["node"]
    assert parse_proxy(node["id"], node["metadata"]).tls
    plain = bootstrap()["node"]
    assert "SPLITMESH_TLS" not in plain["metadata"]
    assert not parse_proxy(plain["id"], plain["metadata"]).tls


def test_gateway_proxy_is_a_router_without_an_outbound_port() -> None:
    gateway = WorkloadIdentity(
        name="ingressgateway",
        namespace="istio-system",
        labels={"istio": "ingressgateway"},
        proxy_type="router",
    )
    node = bootstrap(gateway, outbound_port=None)["node"]
    proxy = parse_proxy(node["id"], node["metadata"])
    assert proxy.type == "router"
    assert proxy.outbound_port is None
    assert proxy.inbound == ()


def test_write_bootstrap_writes_json_atomically(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "envoy.json"
    config = bootstrap()
    assert write_bootstrap(path, config) == path
    assert json.loads(path.read_text()) == config
    assert [p.name for p in path.parent.iterdir()] == ["envoy.json"]
