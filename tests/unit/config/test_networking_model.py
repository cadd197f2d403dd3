"""The typed networking.istio.io/v1alpha3 models: Istio's YAML in, typed values out."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from shared.config import Resource, parse_yaml
from shared.config.networking import (
    DestinationRuleSpec,
    GatewaySpec,
    ServiceEntrySpec,
    SidecarSpec,
    VirtualServiceSpec,
)

REVIEWS_VIRTUAL_SERVICE = """
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: reviews
  namespace: bookinfo
spec:
  hosts:
  - reviews.bookinfo.svc.cluster.local
  http:
  - name: jason
    match:
    - headers:
        end-user:
          exact: jason
      uri:
        prefix: /reviews
      ignoreUriCase: true
    fault:
      delay:
        fixedDelay: 7s
        percentage:
          value: 100
      abort:
        httpStatus: 500
        percentage:
          value: 0.1
    route:
    - destination:
        host: reviews.bookinfo.svc.cluster.local
        subset: v2
  - name: canary
    route:
    - destination:
        host: reviews.bookinfo.svc.cluster.local
        subset: v1
        port:
          number: 9080
      weight: 75
    - destination:
        host: reviews.bookinfo.svc.cluster.local
        subset: v3
      weight: 25
      headers:
        response:
          set: {x-canary: "true"}
    timeout: 10s
    retries:
      attempts: 3
      perTryTimeout: 2s
      retryOn: gateway-error,connect-failure,refused-stream
    mirror:
      host: reviews.bookinfo.svc.cluster.local
      subset: v4
    mirrorPercentage:
      value: 12.5
    corsPolicy:
      allowOrigins:
      - exact: https://example.com
      allowMethods: [GET, POST]
      maxAge: 24h
      allowCredentials: false
  tcp:
  - match:
    - port: 27017
    route:
    - destination:
        host: mongo.backend.svc.cluster.local
        port:
          number: 5555
"""

REVIEWS_DESTINATION_RULE = """
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: reviews
  namespace: bookinfo
spec:
  host: reviews.bookinfo.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      simple: RANDOM
    connectionPool:
      tcp:
        maxConnections: 100
        connectTimeout: 30ms
      http:
        http2MaxRequests: 1000
        maxRequestsPerConnection: 10
        idleTimeout: 1m
    outlierDetection:
      consecutive5xxErrors: 7
      interval: 5m
      baseEjectionTime: 15m
      maxEjectionPercent: 50
    tls:
      mode: ISTIO_MUTUAL
    portLevelSettings:
    - port:
        number: 80
      loadBalancer:
        consistentHash:
          httpCookie: {name: user, ttl: 0s}
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
    trafficPolicy:
      loadBalancer:
        simple: ROUND_ROBIN
"""

GATEWAY = """
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata:
  name: bookinfo-gateway
  namespace: bookinfo
spec:
  selector:
    istio: ingressgateway
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["bookinfo/*.example.com"]
    tls: {httpsRedirect: true}
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: bookinfo-cert, minProtocolVersion: TLSV1_2}
"""

SERVICE_ENTRY = """
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: external-svc
  namespace: bookinfo
spec:
  hosts: [api.example.com]
  addresses: [10.10.0.0/24]
  ports:
  - {number: 443, name: https, protocol: TLS, targetPort: 8443}
  location: MESH_INTERNAL
  resolution: STATIC
  endpoints:
  - address: 10.10.0.7
    ports: {https: 9443}
    labels: {app: api}
    network: west
    locality: us-west/zone1
    weight: 3
  exportTo: ["."]
  subjectAltNames: ["spiffe://cluster.local/ns/bookinfo/sa/api"]
"""

SIDECAR = """
apiVersion: networking.istio.io/v1alpha3
kind: Sidecar
metadata:
  name: ratings
  namespace: bookinfo
spec:
  workloadSelector:
    labels: {app: ratings}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: somename}
    defaultEndpoint: 127.0.0.1:8080
    captureMode: NONE
  egress:
  - port: {number: 3306, protocol: MYSQL, name: egressmysql}
    bind: 127.0.0.1
    hosts: ["*/mysql.foo.com"]
  - hosts: ["./*", "istio-system/*"]
  outboundTrafficPolicy: {mode: ALLOW_ANY}
"""


def _one(text: str) -> Resource:
    result = parse_yaml(text, "example.yaml")
    assert result.issues == ()
    (resource,) = result.resources
    return resource


def test_virtual_service_example_parses_into_typed_fields() -> None:
    spec = _one(REVIEWS_VIRTUAL_SERVICE).spec
    assert isinstance(spec, VirtualServiceSpec)
    jason, canary = spec.http
    assert jason.match[0].headers["end-user"].exact == "jason"
    assert jason.match[0].uri is not None and jason.match[0].uri.prefix == "/reviews"
    assert jason.match[0].ignore_uri_case is True
    assert jason.fault is not None and jason.fault.delay is not None
    assert jason.fault.delay.fixed_delay == timedelta(seconds=7)
    assert jason.fault.abort is not None and jason.fault.abort.http_status == 500
    assert jason.fault.abort.percentage is not None
    assert jason.fault.abort.percentage.value == pytest.approx(0.1)
    assert [route.weight for route in canary.route] == [75, 25]
    assert canary.route[0].destination.port is not None
    assert canary.route[0].destination.port.number == 9080
    assert canary.timeout == timedelta(seconds=10)
    assert canary.retries is not None and canary.retries.attempts == 3
    assert canary.retries.per_try_timeout == timedelta(seconds=2)
    assert canary.cors_policy is not None
    assert canary.cors_policy.max_age == timedelta(hours=24)
    assert spec.tcp[0].match[0].port == 27017


def test_destination_rule_example_parses_into_typed_fields() -> None:
    spec = _one(REVIEWS_DESTINATION_RULE).spec
    assert isinstance(spec, DestinationRuleSpec)
    policy = spec.traffic_policy
    assert policy is not None and policy.load_balancer is not None
    assert policy.load_balancer.simple == "RANDOM"
    assert policy.connection_pool is not None and policy.connection_pool.tcp is not None
    assert policy.connection_pool.tcp.connect_timeout == timedelta(milliseconds=30)
    assert policy.outlier_detection is not None
    assert policy.outlier_detection.consecutive_5xx_errors == 7
    assert policy.outlier_detection.base_ejection_time == timedelta(minutes=15)
    assert policy.tls is not None and policy.tls.mode == "ISTIO_MUTUAL"
    cookie_lb = policy.port_level_settings[0].load_balancer
    assert cookie_lb is not None and cookie_lb.consistent_hash is not None
    assert cookie_lb.consistent_hash.keys_set() == ("httpCookie",)
    assert [subset.name for subset in spec.subsets] == ["v1", "v2"]
    assert spec.subsets[1].labels == {"version": "v2"}


@pytest.mark.parametrize(
    ("text", "model"),
    [
        (REVIEWS_VIRTUAL_SERVICE, VirtualServiceSpec),
        (REVIEWS_DESTINATION_RULE, DestinationRuleSpec),
        (GATEWAY, GatewaySpec),
        (SERVICE_ENTRY, ServiceEntrySpec),
        (SIDECAR, SidecarSpec),
    ],
    ids=["VirtualService", "DestinationRule", "Gateway", "ServiceEntry", "Sidecar"],
)
def test_wire_form_round_trips_even_with_numbers_as_floats(text: str, model: type[Any]) -> None:
    spec = _one(text).spec
    wire = spec.to_wire()
    # A protobuf Struct (the MCP wire) turns every number into a double.
    as_struct = json.loads(json.dumps(wire), parse_int=float)
    assert _has_float_integer(as_struct)
    assert model.model_validate(as_struct) == spec
    assert model.model_validate(wire) == spec


def _has_float_integer(value: object) -> bool:
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, dict):
        return any(_has_float_integer(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_float_integer(item) for item in value)
    return False


def test_wire_form_uses_istio_field_names_and_duration_strings() -> None:
    wire = _one(REVIEWS_DESTINATION_RULE).spec.to_wire()
    outlier = wire["trafficPolicy"]["outlierDetection"]
    assert outlier["consecutive5xxErrors"] == 7
    assert outlier["baseEjectionTime"] == "900s"
    assert wire["trafficPolicy"]["connectionPool"]["tcp"]["connectTimeout"] == "0.03s"


@pytest.mark.parametrize(
    ("text", "path", "word"),
    [
        (SERVICE_ENTRY.replace("number: 443", "number: 443.5"), "spec.ports[0].number", "integer"),
        (REVIEWS_VIRTUAL_SERVICE.replace("retries:", "retry:"), "spec.http[1].retry", "unknown"),
        (
            REVIEWS_VIRTUAL_SERVICE.replace("timeout: 10s", "timeout: soon"),
            "spec.http[1].timeout",
            "duration",
        ),
        (
            REVIEWS_DESTINATION_RULE.replace("RANDOM", "FASTEST"),
            "spec.trafficPolicy.loadBalancer.simple",
            "ROUND_ROBIN",
        ),
        (
            REVIEWS_DESTINATION_RULE.replace("ISTIO_MUTUAL", "STRICT"),
            "spec.trafficPolicy.tls.mode",
            "MUTUAL",
        ),
        (SERVICE_ENTRY.replace("MESH_INTERNAL", "INTERNAL"), "spec.location", "MESH_EXTERNAL"),
        (
            SERVICE_ENTRY.replace("resolution: STATIC", "resolution: DNS_ROUND"),
            "spec.resolution",
            "STATIC",
        ),
        (
            SIDECAR.replace("ALLOW_ANY", "ALLOW_ALL"),
            "spec.outboundTrafficPolicy.mode",
            "REGISTRY_ONLY",
        ),
        (
            SIDECAR.replace("captureMode: NONE", "captureMode: TPROXY"),
            "spec.ingress[0].captureMode",
            "IPTABLES",
        ),
        (
            GATEWAY.replace("mode: SIMPLE", "mode: STRICT"),
            "spec.servers[1].tls.mode",
            "PASSTHROUGH",
        ),
        (
            REVIEWS_VIRTUAL_SERVICE.replace(
                "- destination:\n        host: reviews.bookinfo.svc.cluster.local\n"
                "        subset: v2",
                "- weight: 100",
            ),
            "spec.http[0].route[0].destination",
            "required",
        ),
    ],
    ids=[
        "fractional-int",
        "unknown-field",
        "bad-duration",
        "lb-enum",
        "tls-mode-enum",
        "location-enum",
        "resolution-enum",
        "outbound-mode-enum",
        "capture-mode-enum",
        "server-tls-mode-enum",
        "missing-destination",
    ],
)
def test_type_errors_name_the_field(text: str, path: str, word: str) -> None:
    result = parse_yaml(text, "example.yaml")
    assert result.resources == ()
    assert any(issue.path == path and word in issue.message for issue in result.issues), [
        str(issue) for issue in result.issues
    ]


def test_models_are_immutable() -> None:
    spec = _one(GATEWAY).spec
    assert isinstance(spec, GatewaySpec)
    with pytest.raises(ValidationError):
        spec.servers = ()  # type: ignore[misc]
