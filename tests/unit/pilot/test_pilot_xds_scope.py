"""Sidecar egress scoping, exportTo visibility, cache keys and shared generation."""

from __future__ import annotations

from typing import Any

from services.pilot.core.model import (
    CLUSTER_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    Proxy,
    node_id,
    parse_proxy,
)
from services.pilot.core.registry import services_from_service_entries
from services.pilot.core.snapshot import MeshSnapshot
from services.pilot.core.xds.generate import (
    SharedCache,
    generate,
    generate_shared,
    scope_key,
    shared_key,
)
from services.pilot.core.xds.scope import proxy_scope, select_sidecar
from shared.config import parse_yaml


def _entry(name: str, namespace: str, extra: str = "") -> str:
    return (
        "apiVersion: networking.istio.io/v1alpha3\nkind: ServiceEntry\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\n"
        f"spec:\n  hosts: [{name}]\n  resolution: STATIC\n{extra}"
        "  ports: [{number: 8080, name: http, protocol: HTTP}]\n"
        "  endpoints: [{address: 127.0.0.1}]\n"
    )


def _sidecar_resource(name: str, namespace: str, body: str) -> str:
    return (
        "apiVersion: networking.istio.io/v1alpha3\nkind: Sidecar\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{body}"
    )


REGISTRY = [
    _entry("catalog", "shop"),
    _entry("ratings", "shop"),
    _entry("billing", "finance", "  exportTo: ['.']\n"),
    _entry("ledger", "finance"),
    _entry("metrics", "istio-system"),
]


def _snapshot(*extra: str, version: str = "s") -> MeshSnapshot:
    parsed = parse_yaml("\n---\n".join([*REGISTRY, *extra]), "scope.yaml")
    assert not parsed.issues, parsed.issues
    resources = parsed.resources
    return MeshSnapshot.build(resources, services_from_service_entries(resources), version=version)


def _proxy(namespace: str, labels: dict[str, str] | None = None, **meta: Any) -> Proxy:
    return parse_proxy(
        node_id("sidecar", "127.0.0.1", "w", namespace), {"LABELS": labels or {}, **meta}
    )


def _hosts(snapshot: MeshSnapshot, proxy: Proxy) -> list[str]:
    return [s.hostname.split(".")[0] for s in proxy_scope(snapshot, proxy).services]


def test_without_sidecar_a_proxy_sees_everything_exported_to_its_namespace() -> None:
    snapshot = _snapshot()
    assert _hosts(snapshot, _proxy("shop")) == ["catalog", "ledger", "metrics", "ratings"]
    assert "billing" in _hosts(snapshot, _proxy("finance"))


def test_sidecar_egress_hosts_narrow_what_a_proxy_sees() -> None:
    snapshot = _snapshot(
        _sidecar_resource(
            "default",
            "shop",
            "  egress: [{hosts: ['./*', 'istio-system/metrics.istio-system.svc.cluster.local']}]\n"
            "  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n",
        )
    )
    scope = proxy_scope(snapshot, _proxy("shop"))
    assert _hosts(snapshot, _proxy("shop")) == ["catalog", "metrics", "ratings"]
    assert scope.allow_any is False
    assert scope.sidecar is not None and scope.sidecar.metadata.name == "default"
    config = generate(snapshot, _proxy("shop"))
    assert not any("ledger" in name for name in config.of_type(CLUSTER_TYPE))


def test_sidecar_selection_prefers_a_matching_selector_then_namespace_then_root() -> None:
    snapshot = _snapshot(
        _sidecar_resource("special", "shop", "  workloadSelector: {labels: {app: special}}\n"),
        _sidecar_resource("shop-default", "shop", "  egress: [{hosts: ['./*']}]\n"),
        _sidecar_resource("mesh-default", "istio-system", "  egress: [{hosts: ['*/*']}]\n"),
    )

    def chosen(namespace: str, labels: dict[str, str] | None = None) -> str | None:
        found = select_sidecar(snapshot, _proxy(namespace, labels))
        return None if found is None else found.metadata.name

    assert chosen("shop", {"app": "special"}) == "special"
    assert chosen("shop", {"app": "other"}) == "shop-default"
    assert chosen("finance") == "mesh-default"
    router = parse_proxy(node_id("router", "127.0.0.1", "gw", "shop"), {})
    assert select_sidecar(snapshot, router) is None


def test_cache_keys_separate_whole_configs_but_share_the_common_part() -> None:
    snapshot = _snapshot()
    v1 = _proxy("shop", {"version": "v1"}, SPLITMESH_INBOUND=[_inbound(18081)])
    v2 = _proxy("shop", {"version": "v2"}, SPLITMESH_INBOUND=[_inbound(18082)])
    twin = _proxy("shop", {"version": "v9"}, SPLITMESH_INBOUND=[_inbound(18081)])
    assert scope_key(snapshot, v1) != scope_key(snapshot, v2)
    assert scope_key(snapshot, v1) == scope_key(snapshot, twin)
    assert generate(snapshot, v1) == generate(snapshot, twin)
    assert shared_key(snapshot, v1) == shared_key(snapshot, v2)
    assert shared_key(snapshot, v1) != shared_key(snapshot, _proxy("finance"))
    newer = _snapshot(version="s2")
    assert shared_key(newer, v1) != shared_key(snapshot, v1)


def test_source_label_matching_puts_labels_into_the_shared_key() -> None:
    snapshot = _snapshot(
        "apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\n"
        "metadata: {name: catalog, namespace: shop}\nspec:\n  hosts: [catalog]\n"
        "  http: [{match: [{sourceLabels: {app: a}}], route: [{destination: {host: ratings}}]}]\n"
    )
    assert shared_key(snapshot, _proxy("shop", {"app": "a"})) != shared_key(
        snapshot, _proxy("shop", {"app": "b"})
    )


def _inbound(port: int) -> dict[str, Any]:
    return {"port": port, "app_port": port + 10000, "service": "catalog.shop.svc.cluster.local"}


def test_shared_cache_generates_the_common_part_once_and_matches_generate() -> None:
    snapshot = _snapshot()
    v1 = _proxy("shop", SPLITMESH_OUTBOUND_PORT=15001, SPLITMESH_INBOUND=[_inbound(18081)])
    v2 = _proxy("shop", SPLITMESH_OUTBOUND_PORT=15002, SPLITMESH_INBOUND=[_inbound(18082)])
    cache = SharedCache(max_entries=4)
    first, second = cache.generate(snapshot, v1), cache.generate(snapshot, v2)
    assert first == generate(snapshot, v1)
    assert second == generate(snapshot, v2)
    assert cache.shared(snapshot, v1) is cache.shared(snapshot, v2)
    shared = generate_shared(snapshot, v1)
    assert first.of_type(ROUTE_TYPE)["outbound_http"] == shared.outbound_route
    assert set(first.of_type(LISTENER_TYPE)) == {"outbound_http", "inbound|18081"}
    assert set(second.of_type(LISTENER_TYPE)) == {"outbound_http", "inbound|18082"}


def test_routers_get_gateway_listeners_only_when_a_gateway_selects_them() -> None:
    snapshot = _snapshot(
        "apiVersion: networking.istio.io/v1alpha3\nkind: Gateway\n"
        "metadata: {name: edge, namespace: shop}\n"
        "spec:\n  selector: {istio: ingressgateway}\n"
        "  servers: [{port: {number: 8000, name: http, protocol: HTTP}, hosts: ['*']}]\n"
    )

    def listeners(labels: dict[str, str]) -> list[str]:
        router = parse_proxy(
            node_id("router", "127.0.0.1", "gw", "istio-system"), {"LABELS": labels}
        )
        return sorted(generate(snapshot, router).of_type(LISTENER_TYPE))

    assert listeners({"istio": "ingressgateway"}) == ["gateway_8000"]
    assert listeners({"istio": "egressgateway"}) == []
