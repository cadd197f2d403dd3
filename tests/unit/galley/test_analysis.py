"""Cross-resource analysis: each finding, and its absence when the config is right."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.galley.core.analysis import analyze, fqdn
from shared.config import ConfigIssue, Severity, parse_yaml

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "mesh"

GATEWAY = """
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata: {name: web, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
    - port: {number: 80, name: http, protocol: HTTP}
      hosts: ["*"]
"""

DESTINATION_RULE = """
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: catalog, namespace: shop}
spec:
  host: catalog
  subsets:
    - {name: v1, labels: {version: v1}}
"""


def _vs(name: str, *, hosts: str = "[catalog]", gateways: str = "[]", subset: str = "v1") -> str:
    return f"""
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {{name: {name}, namespace: shop}}
spec:
  hosts: {hosts}
  gateways: {gateways}
  http:
    - route:
        - destination: {{host: catalog.shop.svc.cluster.local, subset: {subset}}}
"""


def _analyze(*documents: str) -> list[ConfigIssue]:
    result = parse_yaml("\n---\n".join(documents), "test.yaml")
    assert not result.issues, [str(i) for i in result.issues]
    return analyze(result.resources)


def _messages(issues: list[ConfigIssue]) -> list[str]:
    return [str(issue) for issue in issues]


def test_the_shipped_examples_are_clean() -> None:
    resources = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        result = parse_yaml(path.read_bytes(), str(path))
        assert not result.issues
        resources.extend(result.resources)
    assert _messages(analyze(resources)) == []


def test_short_hosts_resolve_in_the_writers_namespace() -> None:
    assert fqdn("catalog", "shop") == "catalog.shop.svc.cluster.local"
    assert fqdn("catalog.other.svc.cluster.local", "shop") == "catalog.other.svc.cluster.local"
    assert fqdn("*.example.com", "shop") == "*.example.com"


def test_unknown_gateway_is_reported_with_its_path() -> None:
    issues = _analyze(DESTINATION_RULE, _vs("a", gateways="[missing, mesh]"))
    assert len(issues) == 1
    assert issues[0].path == "spec.gateways[0]"
    assert "gateway 'missing' not found" in issues[0].message
    assert issues[0].object_ref == "VirtualService shop/a"


def test_known_gateway_by_short_and_namespaced_name() -> None:
    issues = _analyze(
        GATEWAY, DESTINATION_RULE, _vs("a", gateways="[web, shop/web]", hosts="[x.com]")
    )
    assert issues == []


def test_route_to_missing_subset_is_reported() -> None:
    issues = _analyze(DESTINATION_RULE, _vs("a", subset="v9"))
    assert [i.path for i in issues] == ["spec.http[0].route[0].destination.subset"]
    assert "subset 'v9'" in issues[0].message
    assert "catalog.shop.svc.cluster.local" in issues[0].message


def test_route_to_subset_without_any_destination_rule_is_reported() -> None:
    issues = _analyze(_vs("a"))
    assert len(issues) == 1 and "subset 'v1'" in issues[0].message


def test_two_virtual_services_claiming_one_host() -> None:
    issues = _analyze(
        DESTINATION_RULE, _vs("a"), _vs("b", hosts="[catalog.shop.svc.cluster.local]")
    )
    assert len(issues) == 1
    assert issues[0].object_ref == "VirtualService shop/b"
    assert "shop/a, shop/b" in issues[0].message


def test_same_host_on_different_gateways_is_not_a_conflict() -> None:
    issues = _analyze(GATEWAY, DESTINATION_RULE, _vs("a"), _vs("b", gateways="[web]"))
    assert issues == []


AUTHZ = """
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {{name: p, namespace: shop}}
spec:
  selector:
    matchLabels: {{app: {app}}}
"""

ENTRY = """
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {name: ratings, namespace: shop}
spec:
  hosts: [ratings.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, labels: {app: ratings, version: v1}}]
"""


@pytest.mark.parametrize(("app", "expected"), [("ratings", 0), ("nobody", 1)])
def test_authorization_policy_selector_must_match_a_workload(app: str, expected: int) -> None:
    issues = _analyze(ENTRY, AUTHZ.format(app=app))
    assert len(issues) == expected
    if expected:
        assert issues[0].severity is Severity.WARNING
        assert issues[0].path == "spec.selector.matchLabels"


MIXER = """
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {name: deny, namespace: shop}
spec:
  compiledAdapter: denier
  params: {status: {code: 7}}
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {name: nothing, namespace: shop}
spec:
  compiledTemplate: checknothing
"""


@pytest.mark.parametrize(
    ("handler", "instances", "paths"),
    [
        ("deny", "[nothing]", []),
        ("deny.shop", "[nothing.instance.shop]", []),
        ("gone", "[nothing]", ["spec.actions[0].handler"]),
        ("deny", "[nothing, gone]", ["spec.actions[0].instances[1]"]),
        ("deny.other", "[nothing]", ["spec.actions[0].handler"]),
    ],
)
def test_mixer_rule_references(handler: str, instances: str, paths: list[str]) -> None:
    rule = f"""
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {{name: r, namespace: shop}}
spec:
  actions: [{{handler: {handler}, instances: {instances}}}]
"""
    assert [issue.path for issue in _analyze(MIXER, rule)] == paths
