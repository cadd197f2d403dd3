"""RDS: how VirtualServices become Envoy routes for sidecars and gateways."""

from __future__ import annotations

from typing import Any

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2

from services.pilot.core.model import ROUTE_TYPE, Proxy, ProxyConfig, node_id, parse_proxy
from services.pilot.core.registry import services_from_service_entries
from services.pilot.core.snapshot import MeshSnapshot
from services.pilot.core.xds import naming
from services.pilot.core.xds.generate import generate
from services.pilot.core.xds.problems import Problem
from shared.config import parse_yaml

REGISTRY = """
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {name: catalog, namespace: shop}
spec:
  hosts: [catalog]
  resolution: STATIC
  ports:
    - {number: 8080, name: http, protocol: HTTP}
    - {number: 9090, name: http-admin, protocol: HTTP}
  endpoints: [{address: 127.0.0.1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {name: ratings, namespace: shop}
spec:
  hosts: [ratings]
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: catalog, namespace: shop}
spec:
  host: catalog
  trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true}}}
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
"""


def _proxy(namespace: str = "shop", labels: dict[str, str] | None = None) -> Proxy:
    return parse_proxy(
        node_id("sidecar", "127.0.0.1", "client", namespace),
        {"LABELS": labels or {"app": "client"}, "SPLITMESH_OUTBOUND_PORT": 15001},
    )


def _generate(
    config: str, proxy: Proxy | None = None, problems: list[Problem] | None = None
) -> ProxyConfig:
    parsed = parse_yaml(REGISTRY + "\n---\n" + config, "test.yaml")
    assert not parsed.issues, parsed.issues
    resources = parsed.resources
    snapshot = MeshSnapshot.build(resources, services_from_service_entries(resources), version="t")
    report = problems.append if problems is not None else None
    return generate(snapshot, proxy or _proxy(), report=report)


def _routes(config: ProxyConfig, name: str = naming.OUTBOUND_HTTP) -> route_pb2.RouteConfiguration:
    found = config.of_type(ROUTE_TYPE)[name]
    assert isinstance(found, route_pb2.RouteConfiguration)
    return found


def _host(config: ProxyConfig, name: str, route_config: str = naming.OUTBOUND_HTTP) -> Any:
    return next(h for h in _routes(config, route_config).virtual_hosts if h.name == name)


def _vs(body: str, name: str = "catalog", namespace: str = "shop") -> str:
    return (
        "apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{body}"
    )


CATALOG = "catalog.shop.svc.cluster.local:8080"


def test_each_service_port_has_a_virtual_host_with_every_host_form() -> None:
    config = _generate("")
    assert _host(config, CATALOG).domains == [
        "catalog.shop.svc.cluster.local",
        "catalog.shop.svc",
        "catalog.shop",
        "catalog",
        "catalog.shop.svc.cluster.local:8080",
        "catalog.shop.svc:8080",
        "catalog.shop:8080",
        "catalog:8080",
    ]
    assert _host(config, "catalog.shop.svc.cluster.local:9090").domains == [
        "catalog.shop.svc.cluster.local:9090",
        "catalog.shop.svc:9090",
        "catalog.shop:9090",
        "catalog:9090",
    ]
    elsewhere = _generate("", _proxy(namespace="web"))
    assert "catalog" not in _host(elsewhere, CATALOG).domains
    assert "catalog.shop" in _host(elsewhere, CATALOG).domains


def test_a_service_without_virtual_service_gets_istio_default_route() -> None:
    (route,) = _host(_generate(""), CATALOG).routes
    assert route.match.prefix == "/"
    assert route.route.cluster == "outbound|8080||catalog.shop.svc.cluster.local"
    assert route.route.timeout.ToTimedelta().total_seconds() == 0
    assert route.route.HasField("timeout")
    assert route.route.retry_policy.num_retries.value == 2
    assert list(route.route.retry_policy.retriable_status_codes) == [503]
    assert route.route.hash_policy[0].connection_properties.source_ip


def test_uri_header_query_method_authority_and_scheme_matches() -> None:
    config = _generate(
        _vs(
            "  hosts: [catalog]\n  http:\n  - match:\n"
            "    - uri: {exact: /Items}\n      ignoreUriCase: true\n"
            "      method: {exact: POST}\n      authority: {prefix: catalog}\n"
            "      scheme: {exact: http}\n"
            "      headers: {x-user: {regex: 'test.*'}, x-any: {prefix: ''}}\n"
            "      withoutHeaders: {x-skip: {exact: '1'}}\n"
            "      queryParams: {debug: {exact: 'on'}}\n"
            "    - uri: {regex: '/v[0-9]+/.*'}\n"
            "    - uri: {prefix: /api}\n"
            "    route: [{destination: {host: catalog}}]\n"
        )
    )
    first, regex, prefix = _host(config, CATALOG).routes
    assert first.match.path == "/Items"
    assert first.match.case_sensitive.value is False
    headers = {h.name: h for h in first.match.headers}
    assert headers[":method"].string_match.exact == "POST"
    assert headers[":authority"].string_match.prefix == "catalog"
    assert headers[":scheme"].string_match.exact == "http"
    assert headers["x-user"].string_match.safe_regex.regex == "test.*"
    assert headers["x-any"].present_match
    assert headers["x-skip"].invert_match and headers["x-skip"].string_match.exact == "1"
    (query,) = first.match.query_parameters
    assert (query.name, query.string_match.exact) == ("debug", "on")
    assert regex.match.safe_regex.regex == "/v[0-9]+/.*"
    assert prefix.match.prefix == "/api"


def test_port_source_label_and_gateway_conditions_decide_where_a_match_applies() -> None:
    body = (
        "  hosts: [catalog]\n  http:\n"
        "  - match: [{port: 9090}]\n    route: [{destination: {host: catalog}}]\n"
        "  - match: [{sourceLabels: {app: tester}}]\n"
        "    route: [{destination: {host: catalog, subset: v2}}]\n"
        "  - match: [{gateways: [edge]}]\n    route: [{destination: {host: ratings}}]\n"
        "  - route: [{destination: {host: catalog, subset: v1}}]\n"
    )
    plain = _generate(_vs(body))
    assert len(_host(plain, CATALOG).routes) == 1
    admin = _host(plain, "catalog.shop.svc.cluster.local:9090").routes
    assert [r.route.cluster for r in admin] == [
        "outbound|9090||catalog.shop.svc.cluster.local",
        "outbound|9090|v1|catalog.shop.svc.cluster.local",
    ]
    tester = _generate(_vs(body), _proxy(labels={"app": "tester"}))
    assert [r.route.cluster for r in _host(tester, CATALOG).routes] == [
        "outbound|8080|v2|catalog.shop.svc.cluster.local",
        "outbound|8080|v1|catalog.shop.svc.cluster.local",
    ]


def test_weighted_routes_to_subsets_with_per_destination_headers() -> None:
    config = _generate(
        _vs(
            "  hosts: [catalog]\n  http:\n  - route:\n"
            "    - destination: {host: catalog, subset: v1}\n      weight: 75\n"
            "      headers: {request: {set: {x-v: '1'}}, response: {remove: [x-int]}}\n"
            "    - destination: {host: catalog, subset: v2}\n      weight: 25\n"
            "    - destination: {host: ratings}\n      weight: 0\n"
        )
    )
    (route,) = _host(config, CATALOG).routes
    clusters = route.route.weighted_clusters.clusters
    assert [(c.name, c.weight.value) for c in clusters] == [
        ("outbound|8080|v1|catalog.shop.svc.cluster.local", 75),
        ("outbound|8080|v2|catalog.shop.svc.cluster.local", 25),
    ]
    assert clusters[0].request_headers_to_add[0].header.key == "x-v"
    assert list(clusters[0].response_headers_to_remove) == ["x-int"]


def test_a_destination_left_alone_by_zero_weights_keeps_its_headers() -> None:
    config = _generate(
        _vs(
            "  hosts: [catalog]\n  http:\n  - route:\n"
            "    - destination: {host: catalog, subset: v2}\n      weight: 100\n"
            "      headers: {request: {add: {x-canary: 'yes'}}}\n"
            "    - destination: {host: catalog, subset: v1}\n      weight: 0\n"
        )
    )
    (route,) = _host(config, CATALOG).routes
    assert route.route.cluster == "outbound|8080|v2|catalog.shop.svc.cluster.local"
    assert [h.header.key for h in route.request_headers_to_add] == ["x-canary"]


def test_rewrite_redirect_timeout_and_retries() -> None:
    config = _generate(
        _vs(
            "  hosts: [catalog]\n  http:\n"
            "  - match: [{uri: {prefix: /old}}]\n"
            "    redirect: {uri: /new, authority: new.example, redirectCode: 302}\n"
            "  - match: [{uri: {prefix: /v1}}]\n"
            "    rewrite: {uri: /, authority: internal}\n"
            "    timeout: 1.5s\n"
            "    retries: {attempts: 5, perTryTimeout: 200ms, retryOn: '5xx,409'}\n"
            "    route: [{destination: {host: catalog}}]\n"
            "  - retries: {attempts: 0}\n    route: [{destination: {host: catalog}}]\n"
        )
    )
    redirect, rewrite, no_retry = _host(config, CATALOG).routes
    assert redirect.redirect.path_redirect == "/new"
    assert redirect.redirect.host_redirect == "new.example"
    assert redirect.redirect.response_code == rc.RedirectAction.FOUND
    action = rewrite.route
    assert (action.prefix_rewrite, action.host_rewrite_literal) == ("/", "internal")
    assert action.timeout.ToTimedelta().total_seconds() == 1.5
    policy = action.retry_policy
    assert (policy.num_retries.value, policy.retry_on) == (5, "5xx,retriable-status-codes")
    assert list(policy.retriable_status_codes) == [409]
    assert policy.per_try_timeout.ToMilliseconds() == 200
    assert not no_retry.route.HasField("retry_policy")


def test_fault_injection_mirroring_cors_and_header_manipulation() -> None:
    problems: list[Problem] = []
    config = _generate(
        _vs(
            "  hosts: [catalog]\n  http:\n  - fault:\n"
            "      delay: {fixedDelay: 200ms, percentage: {value: 100}}\n"
            "      abort: {httpStatus: 503, percentage: {value: 50}}\n"
            "    mirror: {host: ratings}\n    mirrorPercentage: {value: 25}\n"
            "    corsPolicy:\n      allowOrigins: [{exact: 'https://shop.example'}]\n"
            "      allowMethods: [GET, POST]\n      maxAge: 1h\n      allowCredentials: true\n"
            "    headers:\n      request: {add: {x-a: a}, set: {Host: other}}\n"
            "      response: {set: {x-b: b}}\n"
            "    route: [{destination: {host: catalog}}]\n"
        ),
        problems=problems,
    )
    (route,) = _host(config, CATALOG).routes
    fault = fault_pb2.HTTPFault()
    assert route.typed_per_filter_config[naming.FAULT_FILTER].Unpack(fault)
    assert fault.delay.fixed_delay.ToMilliseconds() == 200
    assert fault.delay.percentage.numerator == 1_000_000
    assert (fault.abort.http_status, fault.abort.percentage.numerator) == (503, 500_000)
    cors = cors_pb2.CorsPolicy()
    assert route.typed_per_filter_config[naming.CORS_FILTER].Unpack(cors)
    assert cors.allow_origin_string_match[0].exact == "https://shop.example"
    assert (cors.allow_methods, cors.max_age, cors.allow_credentials.value) == (
        "GET,POST",
        "3600",
        True,
    )
    (mirror,) = route.route.request_mirror_policies
    assert mirror.cluster == "outbound|8080||ratings.shop.svc.cluster.local"
    assert mirror.runtime_fraction.default_value.numerator == 250_000
    assert [h.header.key for h in route.request_headers_to_add] == ["x-a"]
    assert [h.header.key for h in route.response_headers_to_add] == ["x-b"]
    assert [p.message for p in problems] == [
        "the host header cannot be set, added or removed; use rewrite.authority"
    ]


def test_sidecars_use_only_the_first_virtual_service_of_a_host() -> None:
    first = _vs(
        "  hosts: [catalog]\n  http: [{route: [{destination: {host: catalog, subset: v1}}]}]\n", "a"
    )
    second = _vs("  hosts: [catalog]\n  http: [{route: [{destination: {host: ratings}}]}]\n", "b")
    (route,) = _host(_generate(first + "\n---\n" + second), CATALOG).routes
    assert route.route.cluster == "outbound|8080|v1|catalog.shop.svc.cluster.local"


def test_virtual_service_hosts_outside_the_registry_and_the_catch_all_host() -> None:
    config = _generate(
        _vs("  hosts: [legacy.example]\n  http: [{route: [{destination: {host: ratings}}]}]\n")
    )
    legacy = _host(config, "legacy.example")
    assert list(legacy.domains) == ["legacy.example", "legacy.example:*"]
    assert legacy.routes[0].route.cluster == "outbound|8080||ratings.shop.svc.cluster.local"
    catch_all = _routes(config).virtual_hosts[-1]
    assert (catch_all.name, list(catch_all.domains)) == ("allow_any", ["*"])
    assert catch_all.routes[0].route.cluster == naming.PASSTHROUGH_CLUSTER
    blocked = _generate(
        "apiVersion: mesh.istio.io/v1alpha1\nkind: MeshConfig\n"
        "metadata: {name: mesh, namespace: istio-system}\n"
        "spec: {outboundTrafficPolicy: {mode: REGISTRY_ONLY}}\n"
    )
    catch_all = _routes(blocked).virtual_hosts[-1]
    assert catch_all.name == "block_all"
    assert catch_all.routes[0].direct_response.status == 502


GATEWAY = """
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata: {name: edge, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
    - port: {number: 8000, name: http, protocol: HTTP}
      hosts: [shop.example.com]
    - port: {number: 8001, name: http-redirect, protocol: HTTP}
      hosts: [shop.example.com]
      tls: {httpsRedirect: true}
"""


def test_gateway_routes_merge_fragments_with_catch_all_routes_last() -> None:
    catch_all = _vs(
        "  hosts: [shop.example.com]\n  gateways: [edge]\n"
        "  http: [{route: [{destination: {host: catalog}}]}]\n",
        "a-default",
    )
    api = _vs(
        "  hosts: [shop.example.com]\n  gateways: [shop/edge]\n"
        "  http: [{match: [{uri: {prefix: /ratings}}], route: [{destination: {host: ratings}}]}]\n",
        "b-api",
    )
    router = parse_proxy(
        node_id("router", "127.0.0.1", "gw", "istio-system"),
        {"LABELS": {"istio": "ingressgateway"}},
    )
    config = _generate("\n---\n".join([GATEWAY, catch_all, api]), router)
    host = _host(config, "shop.example.com:8000", naming.gateway_route(8000))
    assert list(host.domains) == ["shop.example.com", "shop.example.com:8000"]
    assert [r.route.cluster for r in host.routes] == [
        "outbound|8080||ratings.shop.svc.cluster.local",
        "outbound|8080||catalog.shop.svc.cluster.local",
    ]
    redirect = _host(config, "shop.example.com:8001", naming.gateway_route(8001))
    assert redirect.require_tls == rc.VirtualHost.ALL
    assert naming.OUTBOUND_HTTP not in config.of_type(ROUTE_TYPE)
