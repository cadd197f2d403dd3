"""MeshSnapshot: Istio's merge rules, DestinationRule lookup, and push change detection."""

from __future__ import annotations

from datetime import timedelta

from services.pilot.core.registry import services_from_service_entries
from services.pilot.core.snapshot import MeshSnapshot, gateway_key, is_exported
from shared.config import parse_yaml
from shared.config.mesh import MeshConfigSpec

SERVICE = """
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {{name: catalog, namespace: shop}}
spec:
  hosts: [catalog]
  resolution: {resolution}
  ports: [{{number: 8080, name: http, protocol: HTTP}}]
  endpoints:
    - address: {address}
      labels: {{version: v1}}
"""


def _snapshot(*documents: str, version: str = "v1") -> MeshSnapshot:
    parsed = parse_yaml("\n---\n".join(documents), "test.yaml")
    assert not parsed.issues, parsed.issues
    resources = parsed.resources
    return MeshSnapshot.build(resources, services_from_service_entries(resources), version=version)


def _rule(name: str, namespace: str, body: str) -> str:
    return (
        "apiVersion: networking.istio.io/v1alpha3\nkind: DestinationRule\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{body}"
    )


def _virtual_service(name: str, namespace: str, body: str) -> str:
    return (
        "apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{body}"
    )


def _lookup(snapshot: MeshSnapshot, host: str, proxy_ns: str, service_ns: str = "shop"):
    return snapshot.destination_rule(host, proxy_namespace=proxy_ns, service_namespace=service_ns)


def test_destination_rules_for_one_host_merge_like_istio() -> None:
    snapshot = _snapshot(
        _rule(
            "b-second",
            "shop",
            "  host: catalog\n  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n"
            "  subsets: [{name: v1, labels: {version: one}}, {name: v2, labels: {version: v2}}]\n",
        ),
        _rule(
            "a-first",
            "shop",
            "  host: catalog.shop.svc.cluster.local\n"
            "  trafficPolicy: {loadBalancer: {simple: LEAST_CONN}}\n"
            "  subsets: [{name: v1, labels: {version: v1}}]\n",
        ),
    )
    rule = _lookup(snapshot, "catalog.shop.svc.cluster.local", "shop")
    assert rule is not None
    assert [(s.name, dict(s.labels)) for s in rule.subsets] == [
        ("v1", {"version": "v1"}),
        ("v2", {"version": "v2"}),
    ]
    assert rule.traffic_policy is not None
    assert rule.traffic_policy.load_balancer is not None
    assert rule.traffic_policy.load_balancer.simple == "LEAST_CONN"
    assert rule.sources == ("DestinationRule shop/a-first", "DestinationRule shop/b-second")
    messages = [p.message for p in snapshot.problems]
    assert any("subset 'v1'" in m and "ignored" in m for m in messages)
    assert any("top-level trafficPolicy" in m for m in messages)


def test_destination_rule_lookup_follows_istio_namespace_path() -> None:
    snapshot = _snapshot(
        _rule("own", "client", "  host: catalog.shop.svc.cluster.local\n  subsets: [{name: a}]\n"),
        _rule("svc", "shop", "  host: catalog.shop.svc.cluster.local\n  subsets: [{name: b}]\n"),
        _rule("mesh", "istio-system", "  host: '*.local'\n  subsets: [{name: c}]\n"),
        _rule(
            "private",
            "other",
            "  host: ratings.shop.svc.cluster.local\n  exportTo: ['.']\n  subsets: [{name: d}]\n",
        ),
    )
    host = "catalog.shop.svc.cluster.local"

    def subset_of(proxy_ns: str, target: str = host) -> str | None:
        rule = _lookup(snapshot, target, proxy_ns)
        return None if rule is None else rule.subsets[0].name

    assert subset_of("client") == "a"
    assert subset_of("shop") == "b"
    assert subset_of("elsewhere") == "b"
    assert subset_of("elsewhere", "ratings.shop.svc.cluster.local") == "c"
    assert subset_of("other", "ratings.shop.svc.cluster.local") == "d"
    assert subset_of("elsewhere", "db.example.com") is None


def test_most_specific_wildcard_rule_wins_within_a_namespace() -> None:
    snapshot = _snapshot(
        _rule("wide", "shop", "  host: '*.local'\n  subsets: [{name: wide}]\n"),
        _rule(
            "narrow", "shop", "  host: '*.shop.svc.cluster.local'\n  subsets: [{name: narrow}]\n"
        ),
    )
    rule = _lookup(snapshot, "catalog.shop.svc.cluster.local", "shop")
    assert rule is not None and rule.subsets[0].name == "narrow"


def test_second_mesh_virtual_service_for_a_host_is_reported_as_shadowed() -> None:
    body = "  hosts: [catalog]\n  http: [{route: [{destination: {host: catalog}}]}]\n"
    snapshot = _snapshot(_virtual_service("b", "shop", body), _virtual_service("a", "shop", body))
    assert [vs.resource.metadata.name for vs in snapshot.virtual_services()] == ["a", "b"]
    assert [(p.ref, "shadowed" in p.message) for p in snapshot.problems] == [
        ("VirtualService shop/b", True)
    ]


def test_virtual_services_are_indexed_by_gateway_with_resolved_names_and_hosts() -> None:
    snapshot = _snapshot(
        _virtual_service(
            "site",
            "web",
            "  hosts: [front, site.example.com]\n  gateways: [edge, infra/shared, mesh]\n"
            "  http: [{route: [{destination: {host: front}}]}]\n",
        )
    )
    (bound,) = snapshot.virtual_services("web/edge")
    assert bound.hosts == ("front.web.svc.cluster.local", "site.example.com")
    assert snapshot.virtual_services("infra/shared") == (bound,)
    assert snapshot.virtual_services("mesh") == (bound,)
    assert snapshot.virtual_services("web/other") == ()


def test_mesh_config_defaults_when_absent_and_is_read_when_present() -> None:
    assert _snapshot(SERVICE.format(resolution="STATIC", address="127.0.0.1")).mesh == (
        MeshConfigSpec()
    )
    mesh = _snapshot(
        "apiVersion: mesh.istio.io/v1alpha1\nkind: MeshConfig\n"
        "metadata: {name: mesh, namespace: istio-system}\nspec: {connectTimeout: 3s}\n"
    ).mesh
    assert mesh.connect_timeout == timedelta(seconds=3)


def test_endpoint_only_changes_are_told_apart_from_config_changes() -> None:
    base = _snapshot(SERVICE.format(resolution="STATIC", address="127.0.0.1"), version="1")
    moved = _snapshot(SERVICE.format(resolution="STATIC", address="127.0.0.2"), version="2")
    same = _snapshot(SERVICE.format(resolution="STATIC", address="127.0.0.1"), version="3")
    assert moved.change_from(base) == "endpoints"
    assert same.change_from(base) == "none"
    assert base.change_from(None) == "full"
    with_rule = _snapshot(
        SERVICE.format(resolution="STATIC", address="127.0.0.1"),
        _rule("catalog", "shop", "  host: catalog\n"),
        version="4",
    )
    assert with_rule.change_from(base) == "full"


def test_dns_endpoints_are_config_because_they_are_inlined_in_clusters() -> None:
    before = _snapshot(SERVICE.format(resolution="DNS", address="a.example.com"))
    after = _snapshot(SERVICE.format(resolution="DNS", address="b.example.com"))
    assert after.change_from(before) == "full"


def test_duplicate_service_hosts_keep_the_first_entry_and_report_the_rest() -> None:
    first = SERVICE.format(resolution="STATIC", address="127.0.0.1")
    second = first.replace("name: catalog, namespace: shop", "name: zz, namespace: shop")
    snapshot = _snapshot(first, second)
    assert [s.source for s in snapshot.services] == ["ServiceEntry shop/catalog"]
    assert [p.ref for p in snapshot.problems] == ["ServiceEntry shop/zz"]
    assert snapshot.service("catalog.shop.svc.cluster.local") is snapshot.services[0]


def test_gateway_references_and_export_rules() -> None:
    assert gateway_key("edge", "web") == "web/edge"
    assert gateway_key("infra/edge", "web") == "infra/edge"
    assert gateway_key("edge.infra.svc.cluster.local", "web") == "infra/edge"
    assert gateway_key("mesh", "web") == "mesh"
    assert is_exported((), "a", "b", ("*",))
    assert not is_exported((".",), "a", "b", ("*",))
    assert is_exported((".",), "a", "a", ("*",))
    assert is_exported(("b",), "a", "b", ("*",))
    assert not is_exported(("~",), "a", "a", ("*",))


def test_identity_changes_are_full_changes_not_endpoint_only() -> None:
    """Clusters verify peer SANs from subjectAltNames and endpoint service accounts."""
    from services.pilot.core.registry import services_from_service_entries
    from services.pilot.core.snapshot import MeshSnapshot
    from shared.config import parse_yaml

    def snapshot(sans: str, account: str) -> MeshSnapshot:
        text = f"""
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {{name: catalog, namespace: shop}}
spec:
  hosts: [catalog.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 8080, name: http, protocol: HTTP}}]
  subjectAltNames: {sans}
  endpoints: [{{address: 127.0.0.1, serviceAccount: {account}}}]
"""
        resources = parse_yaml(text, "se.yaml").resources
        return MeshSnapshot.build(resources, services_from_service_entries(resources), version="v")

    base = snapshot("[]", "catalog")
    assert snapshot("[]", "catalog").change_from(base) == "none"
    assert snapshot('["spiffe://cluster.local/ns/shop/sa/x"]', "catalog").change_from(base) == (
        "full"
    )
    assert snapshot("[]", "other").change_from(base) == "full"
