"""The ServiceEntry registry: what services, ports and endpoints Pilot sees, and host rules."""

from __future__ import annotations

import pytest

from services.pilot.core.registry import (
    Endpoint,
    ServicePort,
    fqdn,
    host_matches,
    hosts_overlap,
    more_specific,
    services_from_service_entries,
)
from shared.config import parse_yaml

ENTRIES = """
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {name: catalog, namespace: shop}
spec:
  hosts: [catalog, catalog.mirror.example]
  location: MESH_INTERNAL
  resolution: STATIC
  exportTo: ["."]
  ports:
    - {number: 8080, name: http, protocol: http}
    - {number: 9090, name: grpc-admin, protocol: GRPC, targetPort: 9999}
  endpoints:
    - address: 127.0.0.1
      ports: {http: 18081}
      labels: {app: catalog, version: v1}
      weight: 3
      serviceAccount: catalog
      locality: eu/west/a
    - address: 127.0.0.2
      labels: {app: catalog, version: v2}
---
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api.example.com]
  resolution: DNS
  ports:
    - {number: 443, name: tls, protocol: TLS}
    - {number: 80, name: http-web}
"""


def _services():
    parsed = parse_yaml(ENTRIES, "entries.yaml")
    assert not parsed.issues
    return services_from_service_entries(parsed.resources)


def test_every_host_of_an_entry_is_a_service_with_all_its_ports_and_endpoints() -> None:
    services = _services()
    assert [s.hostname for s in services] == [
        "api.example.com",
        "catalog.shop.svc.cluster.local",
        "catalog.mirror.example",
    ]
    catalog = services[1]
    assert catalog.namespace == "shop"
    assert catalog.resolution == "STATIC"
    assert catalog.location == "MESH_INTERNAL"
    assert catalog.export_to == (".",)
    assert catalog.source == "ServiceEntry shop/catalog"
    assert catalog.ports == (
        ServicePort(name="http", number=8080, protocol="HTTP"),
        ServicePort(name="grpc-admin", number=9090, protocol="GRPC", target_port=9999),
    )
    assert services[2].endpoints == catalog.endpoints
    first, second = catalog.endpoints
    assert (first.address, dict(first.labels), first.weight) == (
        "127.0.0.1",
        {"app": "catalog", "version": "v1"},
        3,
    )
    assert (first.service_account, first.locality) == ("catalog", "eu/west/a")
    assert second.weight is None


def test_endpoint_ports_come_from_the_port_name_else_target_port_else_service_port() -> None:
    catalog = _services()[1]
    http, grpc = catalog.ports
    first, second = catalog.endpoints
    assert first.port_for(http) == 18081
    assert second.port_for(http) == 8080
    assert first.port_for(grpc) == 9999


def test_defaults_external_none_resolution_and_protocol_from_the_port_name() -> None:
    api = _services()[0]
    assert (api.resolution, api.location, api.uses_eds) == ("DNS", "MESH_EXTERNAL", False)
    assert [p.protocol for p in api.ports] == ["TLS", "HTTP"]
    assert [p.is_http for p in api.ports] == [False, True]
    assert api.port(80) is api.ports[1]
    assert api.port(81) is None


def test_entries_are_read_in_namespace_and_name_order_whatever_the_input_order() -> None:
    resources = parse_yaml(ENTRIES, "entries.yaml").resources
    assert services_from_service_entries(reversed(resources)) == _services()


def test_endpoint_selector_matching() -> None:
    endpoint = Endpoint(address="127.0.0.1", labels={"app": "a", "version": "v1"})
    assert endpoint.matches({})
    assert endpoint.matches({"version": "v1"})
    assert not endpoint.matches({"version": "v2"})


@pytest.mark.parametrize(
    ("host", "namespace", "expected"),
    [
        ("reviews", "shop", "reviews.shop.svc.cluster.local"),
        ("Reviews", "shop", "reviews.shop.svc.cluster.local"),
        ("reviews.other", "shop", "reviews.other"),
        ("*.example.com", "shop", "*.example.com"),
        ("*", "shop", "*"),
    ],
)
def test_short_hosts_resolve_in_the_namespace(host: str, namespace: str, expected: str) -> None:
    assert fqdn(host, namespace) == expected


def test_wildcard_host_matching() -> None:
    assert host_matches("*", "anything.example")
    assert host_matches("*.example.com", "a.example.com")
    assert host_matches("*.example.com", "*.b.example.com")
    assert not host_matches("*.example.com", "example.com")
    assert not host_matches("a.example.com", "*.example.com")
    assert hosts_overlap("a.example.com", "*.example.com")
    assert not hosts_overlap("a.example.com", "b.example.com")
    assert more_specific("*.example.com", "a.example.com") == "a.example.com"
    assert more_specific("a.example.com", "*") == "a.example.com"
