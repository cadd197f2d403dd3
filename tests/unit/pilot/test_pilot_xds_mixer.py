"""Mixer mode: the ext_authz, rate-limit and access-log config Pilot gives sidecars."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.access_loggers.grpc.v3 import als_pb2
from envoy.extensions.filters.http.ext_authz.v3 import ext_authz_pb2
from envoy.extensions.filters.http.ratelimit.v3 import rate_limit_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from google.protobuf import json_format

from services.pilot.core.model import (
    CLUSTER_TYPE,
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
from services.pilot.core.xds.generate import generate, scope_key
from services.pilot.core.xds.mixer_filters import mixer_plan
from services.pilot.core.xds.mixer_mode import MixerServer, mixer_mode
from services.pilot.core.xds.problems import Problem
from shared.config import parse_yaml
from shared.config.mesh import MeshConfigSpec

CATALOG = """
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {name: catalog, namespace: shop}
spec:
  hosts: [catalog.shop.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: 18081}}]
"""
MIXER_MESH = """
apiVersion: mesh.istio.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh, namespace: istio-system}
spec:
  disablePolicyChecks: false
  mixerCheckServer: 127.0.0.1:9091
  mixerReportServer: localhost:9092
"""


def _quota(name: str, namespace: str, match: str, dimensions: dict[str, str]) -> str:
    """A memquota handler, a quota instance and the rule joining them, all named ``name``."""
    dims = "".join(f"      {key}: {value!r}\n" for key, value in dimensions.items()) or "      {}\n"
    return f"""
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{compiledAdapter: memquota}}
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  compiledTemplate: quota
  params:
    dimensions:
{dims}---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  match: {match!r}
  actions: [{{handler: {name}, instances: [{name}]}}]
"""


def _snapshot(*documents: str, mesh: str = MIXER_MESH) -> MeshSnapshot:
    parsed = parse_yaml("\n---\n".join([CATALOG, mesh, *documents]), "test.yaml")
    assert not parsed.issues, parsed.issues
    resources = parsed.resources
    return MeshSnapshot.build(resources, services_from_service_entries(resources), version="t")


def _catalog_proxy(labels: dict[str, str] | None = None, protocol: str = "HTTP") -> Proxy:
    inbound = {"port": 18081, "app_port": 28081, "protocol": protocol}
    return parse_proxy(
        node_id("sidecar", "127.0.0.1", "catalog-v1", "shop"),
        {
            "LABELS": {"app": "catalog", "version": "v1"} if labels is None else labels,
            "SPLITMESH_OUTBOUND_PORT": 15001,
            "SPLITMESH_INBOUND": [{**inbound, "service": "catalog.shop.svc.cluster.local"}],
        },
    )


def _generate(snapshot: MeshSnapshot, problems: list[Problem] | None = None) -> ProxyConfig:
    report = problems.append if problems is not None else None
    return generate(snapshot, _catalog_proxy(), report=report)


def _manager(config: ProxyConfig, listener: str) -> hcm.HttpConnectionManager:
    found = config.of_type(LISTENER_TYPE)[listener]
    assert isinstance(found, listener_pb2.Listener)
    manager = hcm.HttpConnectionManager()
    found.filter_chains[0].filters[0].typed_config.Unpack(manager)
    return manager


def _inbound_route(config: ProxyConfig) -> rc.Route:
    found = config.of_type(ROUTE_TYPE)["inbound|18081"]
    assert isinstance(found, route_pb2.RouteConfiguration)
    return found.virtual_hosts[0].routes[0]


def _descriptors(config: ProxyConfig) -> list[list[dict[str, Any]]]:
    """Each rate limit's actions as JSON dicts, for readable comparisons."""
    return [
        [json_format.MessageToDict(action) for action in limit.actions]
        for limit in _inbound_route(config).route.rate_limits
    ]


def _quota_names(config: ProxyConfig) -> list[str]:
    return [actions[0]["genericKey"]["descriptorValue"] for actions in _descriptors(config)]


@pytest.mark.parametrize(
    ("fields", "check", "report"),
    [
        ({}, None, None),
        ({"mixer_check_server": "127.0.0.1:9091"}, None, None),  # policy checks disabled
        (
            {"mixer_check_server": "mixer:9091", "disable_policy_checks": False},
            MixerServer("mixer", 9091),
            None,
        ),
        ({"mixer_report_server": "[::1]:9092"}, None, MixerServer("::1", 9092)),
        (
            {"mixer_report_server": "unix:///tmp/m.sock", "disable_mixer_http_reports": True},
            None,
            None,
        ),
        ({"mixer_report_server": "unix:///tmp/m.sock"}, None, MixerServer("unix:///tmp/m.sock", 0)),
    ],
)
def test_mixer_roles_follow_istio_meshconfig_fields(
    fields: dict[str, Any], check: MixerServer | None, report: MixerServer | None
) -> None:
    mode = mixer_mode(MeshConfigSpec(**fields))
    assert (mode.check, mode.report) == (check, report)
    assert mode.active == (check is not None or report is not None)


def test_an_unparsable_mixer_address_turns_its_role_off_and_is_reported() -> None:
    mesh = MeshConfigSpec(mixer_check_server="no-port", disable_policy_checks=False)
    assert mixer_mode(mesh).check is None
    assert mixer_mode(mesh).bad_addresses == (
        "mixerCheckServer 'no-port' is not host:port or unix:///path; that role is off",
    )


def test_without_mixer_fields_nothing_of_mixer_is_generated() -> None:
    config = _generate(_snapshot(_quota("q", "shop", "", {}), mesh=""))
    assert not {naming.MIXER_POLICY_CLUSTER, naming.MIXER_TELEMETRY_CLUSTER} & set(
        config.of_type(CLUSTER_TYPE)
    )
    for listener in ("outbound_http", "inbound|18081"):
        manager = _manager(config, listener)
        assert [f.name for f in manager.http_filters][-1] == naming.ROUTER_FILTER
        assert len(manager.http_filters) == 3 and not manager.access_log
    assert not _inbound_route(config).typed_per_filter_config


def test_check_and_quota_filters_sit_before_the_router_on_inbound_only() -> None:
    config = _generate(_snapshot())
    inbound = [f.name for f in _manager(config, "inbound|18081").http_filters]
    assert inbound[-3:] == [
        naming.EXT_AUTHZ_FILTER,
        naming.RATE_LIMIT_FILTER,
        naming.ROUTER_FILTER,
    ]
    outbound = _manager(config, "outbound_http")
    assert naming.EXT_AUTHZ_FILTER not in [f.name for f in outbound.http_filters]
    assert outbound.add_user_agent.value is True  # the caller names itself to the server
    assert not _manager(config, "inbound|18081").HasField("add_user_agent")


@pytest.mark.parametrize("fail_open", [True, False])
def test_fail_open_or_closed_follows_policy_check_fail_open(fail_open: bool) -> None:
    mesh = MIXER_MESH + f"  policyCheckFailOpen: {str(fail_open).lower()}\n"
    filters = {
        f.name: f for f in _manager(_generate(_snapshot(mesh=mesh)), "inbound|18081").http_filters
    }
    authz = ext_authz_pb2.ExtAuthz()
    filters[naming.EXT_AUTHZ_FILTER].typed_config.Unpack(authz)
    limit = rate_limit_pb2.RateLimit()
    filters[naming.RATE_LIMIT_FILTER].typed_config.Unpack(limit)
    assert authz.failure_mode_allow is fail_open
    assert limit.failure_mode_deny is not fail_open
    assert authz.grpc_service.envoy_grpc.cluster_name == naming.MIXER_POLICY_CLUSTER
    assert limit.rate_limit_service.grpc_service.envoy_grpc.cluster_name == "mixer-policy"
    assert (authz.transport_api_version, limit.rate_limit_service.transport_api_version) == (2, 2)
    assert authz.include_peer_certificate and not authz.HasField("with_request_body")
    assert limit.domain == "mixer" and limit.timeout.ToMilliseconds() == 1000


def test_mixer_clusters_are_http2_static_for_ips_and_dns_for_names() -> None:
    clusters = _generate(_snapshot()).of_type(CLUSTER_TYPE)
    policy, telemetry = clusters["mixer-policy"], clusters["mixer-telemetry"]
    assert isinstance(policy, cluster_pb2.Cluster) and isinstance(telemetry, cluster_pb2.Cluster)
    assert policy.type == cluster_pb2.Cluster.STATIC
    assert telemetry.type == cluster_pb2.Cluster.STRICT_DNS
    address = telemetry.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address
    assert (address.socket_address.address, address.socket_address.port_value) == (
        "localhost",
        9092,
    )
    for cluster in (policy, telemetry):
        options = cluster.typed_extension_protocol_options[
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        ]
        assert "http2ProtocolOptions" in json_format.MessageToDict(options)["explicitHttpConfig"]


def test_the_inbound_route_tells_mixer_the_destination() -> None:
    per_route = ext_authz_pb2.ExtAuthzPerRoute()
    route = _inbound_route(_generate(_snapshot()))
    route.typed_per_filter_config[naming.EXT_AUTHZ_FILTER].Unpack(per_route)
    assert dict(per_route.check_settings.context_extensions) == {
        "destination.service.host": "catalog.shop.svc.cluster.local",
        "destination.service.name": "catalog",
        "destination.service.namespace": "shop",
        "destination.namespace": "shop",
        "destination.workload.name": "catalog-v1",
        "destination.workload.namespace": "shop",
        "destination.labels": '{"app":"catalog","version":"v1"}',
        "destination.port": "18081",
        "context.reporter.kind": "inbound",
    }


def _header(name: str, key: str) -> dict[str, Any]:
    return {"requestHeaders": {"headerName": name, "descriptorKey": key, "skipIfAbsent": True}}


def _generic(key: str, value: str) -> dict[str, Any]:
    return {"genericKey": {"descriptorKey": key, "descriptorValue": value}}


def test_quota_dimensions_become_rate_limit_actions() -> None:
    dimensions = {
        "user": 'request.headers["X-User"] | "anon"',
        "path": "request.path",
        "source": 'source.workload.name | "unknown"',
        "client": "source.ip",
        "port": "destination.port",
    }
    config = _generate(
        _snapshot(_quota("perclient", "shop", 'request.method == "GET"', dimensions))
    )
    assert _descriptors(config) == [
        [
            _generic("quota", "perclient.instance.shop"),
            _generic("destination.service.host", "catalog.shop.svc.cluster.local"),
            _generic("destination.namespace", "shop"),
            _header("x-request-id", "request.id"),
            _generic("destination.port", "18081"),
            _header(":method", "request.method"),
            _header(":path", "request.path"),
            {"remoteAddress": {}},
            _header("x-envoy-downstream-service-cluster", "source_cluster"),
            _header("x-user", "request.headers[x-user]"),
        ]
    ]


@pytest.mark.parametrize(
    ("namespace", "match", "applies"),
    [
        ("shop", "", True),
        ("istio-system", "", True),  # the root namespace's rules apply everywhere
        ("finance", "", False),  # rules apply to destinations in their namespace only
        ("shop", 'destination.service.host == "ratings.shop.svc.cluster.local"', False),
        ("shop", 'destination.labels["version"] == "v1"', True),
        ("shop", 'destination.labels["version"] == "v2"', False),
        ("shop", 'destination.labels["tier"] == "gold"', False),  # a missing key never holds
        ("shop", 'destination.labels["version"] == "v2" || request.path == "/"', True),
    ],
)
def test_pilot_drops_quota_descriptors_that_cannot_apply_to_the_destination(
    namespace: str, match: str, applies: bool
) -> None:
    config = _generate(_snapshot(_quota("q", namespace, match, {})))
    assert _quota_names(config) == ([f"q.instance.{namespace}"] if applies else [])


def test_quota_references_resolve_like_mixer_and_only_quota_handlers_count() -> None:
    shared = _quota("shared", "istio-system", "", {})
    other_rule = """
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {name: again, namespace: shop}
spec:
  actions:
    - {handler: shared.istio-system, instances: [shared.instance.istio-system]}
---
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {name: deny, namespace: shop}
spec: {compiledAdapter: denier}
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {name: nothing, namespace: shop}
spec: {compiledTemplate: checknothing}
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {name: deny, namespace: shop}
spec:
  actions:
    - {handler: deny, instances: [nothing]}
    - {handler: shared.handler.istio-system, instances: [nothing]}
"""
    config = _generate(_snapshot(shared, other_rule))
    assert _quota_names(config) == ["shared.instance.istio-system"]  # one descriptor per quota


def test_attributes_envoy_cannot_carry_are_reported_and_left_out() -> None:
    problems: list[Problem] = []
    dimensions = {"who": 'source.principal | "none"', "size": "request.size | 0"}
    config = _generate(_snapshot(_quota("q", "shop", "", dimensions)), problems)
    assert {str(problem) for problem in problems} == {
        f"rule shop/q: quota: {attribute} cannot be carried to Mixer by Envoy's rate-limit "
        "actions; quota requests go without it"
        for attribute in ("source.principal", "request.size")
    }
    assert len(_descriptors(config)[0]) == 4  # quota, host, namespace, request id


def test_access_log_streams_to_mixer_with_the_headers_rules_read() -> None:
    report = """
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {name: requests, namespace: istio-system}
spec:
  compiledTemplate: metric
  params:
    value: "1"
    dimensions:
      user: request.headers["X-User"] | "anonymous"
      cache: response.headers["x-cache"] | "-"
"""
    snapshot = _snapshot(_quota("q", "shop", 'request.headers["x-tier"] == "gold"', {}), report)
    config = _generate(snapshot)
    for listener in ("outbound_http", "inbound|18081"):
        (log,) = _manager(config, listener).access_log
        assert log.name == naming.GRPC_ACCESS_LOG
        als = als_pb2.HttpGrpcAccessLogConfig()
        log.typed_config.Unpack(als)
        assert als.common_config.log_name == "mixer"
        assert als.common_config.grpc_service.envoy_grpc.cluster_name == "mixer-telemetry"
        assert als.common_config.transport_api_version == 2  # V3
        assert als.common_config.buffer_flush_interval.ToMilliseconds() == 1000
        assert list(als.additional_request_headers_to_log) == [
            "content-type",
            "x-envoy-downstream-service-cluster",
            "x-tier",
            "x-user",
        ]
        assert list(als.additional_response_headers_to_log) == ["x-cache"]


def test_reports_without_checks_add_no_check_filter_or_policy_cluster() -> None:
    mesh = MIXER_MESH.replace("disablePolicyChecks: false", "disablePolicyChecks: true")
    config = _generate(_snapshot(_quota("q", "shop", "", {}), mesh=mesh))
    assert "mixer-policy" not in config.of_type(CLUSTER_TYPE)
    inbound = _manager(config, "inbound|18081")
    assert len(inbound.http_filters) == 3 and len(inbound.access_log) == 1
    assert not _inbound_route(config).route.rate_limits
    assert not _inbound_route(config).typed_per_filter_config


def test_tcp_inbound_ports_get_no_mixer_filters() -> None:
    snapshot = _snapshot()
    config = generate(snapshot, _catalog_proxy(protocol="TCP"))
    listener = config.of_type(LISTENER_TYPE)["inbound|18081"]
    assert isinstance(listener, listener_pb2.Listener)
    assert listener.filter_chains[0].filters[0].name == naming.TCP_PROXY_FILTER
    assert "inbound|18081" not in config.of_type(ROUTE_TYPE)


def test_with_checks_on_workload_identity_is_part_of_the_scope_key() -> None:
    snapshot = _snapshot(_quota("q", "shop", 'destination.labels["version"] == "v1"', {}))
    v1, v9 = _catalog_proxy({"version": "v1"}), _catalog_proxy({"version": "v9"})
    assert scope_key(snapshot, v1) != scope_key(snapshot, v9)
    assert generate(snapshot, v1) != generate(snapshot, v9)
    plain = _snapshot(mesh="")
    assert scope_key(plain, v1) == scope_key(plain, v9)


def test_the_plan_is_computed_once_per_config_digest() -> None:
    first, second = _snapshot(), _snapshot()
    assert first is not second and first.config_digest == second.config_digest
    assert mixer_plan(first) is mixer_plan(second)
    assert mixer_plan(_snapshot(mesh="")) is not mixer_plan(first)
