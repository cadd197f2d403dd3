"""AuthorizationPolicy in Check: DENY before ALLOW, scopes, selectors, every field."""

from __future__ import annotations

import ipaddress

import pytest

from services.mixer.core.status import Code


def policy(name: str, body: str, namespace: str = "shop") -> str:
    return (
        "apiVersion: security.istio.io/v1beta1\nkind: AuthorizationPolicy\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{body}\n---\n"
    )


READERS = policy(
    "ratings-readers",
    """  selector: {matchLabels: {app: ratings}}
  action: ALLOW
  rules:
    - from: [{source: {principals: [cluster.local/ns/shop/sa/storefront]}}]
      to: [{operation: {methods: [GET], paths: [/ratings/*]}}]""",
)
NO_DELETE = policy(
    "no-delete",
    """  action: DENY
  rules: [{to: [{operation: {methods: [DELETE]}}]}]""",
)
RATINGS = {
    "destination.namespace": "shop",
    "destination.labels": {"app": "ratings", "version": "v1"},
    "source.principal": "cluster.local/ns/shop/sa/storefront",
    "request.method": "GET",
    "request.path": "/ratings/7?verbose=1",
}


async def test_allow_policy_admits_only_matching_requests(kit) -> None:
    await kit.load(READERS)
    assert kit.check(RATINGS).status.ok
    for change in (
        {"source.principal": "cluster.local/ns/shop/sa/other"},
        {"request.method": "POST"},
        {"request.path": "/admin"},
    ):
        denied = kit.check({**RATINGS, **change})
        assert denied.status.code is Code.PERMISSION_DENIED
        assert denied.decided_by == "shop/ratings-readers"


async def test_spiffe_prefix_of_a_principal_is_ignored(kit) -> None:
    await kit.load(READERS)
    principal = "spiffe://cluster.local/ns/shop/sa/storefront"
    assert kit.check({**RATINGS, "source.principal": principal}).status.ok


async def test_workloads_the_selector_does_not_pick_are_unaffected(kit) -> None:
    await kit.load(READERS)
    other = {**RATINGS, "destination.labels": {"app": "catalog"}, "request.method": "POST"}
    assert kit.check(other).status.ok
    assert kit.check(
        {**RATINGS, "destination.namespace": "prod", "request.method": "POST"}
    ).status.ok


async def test_deny_is_evaluated_before_allow(kit) -> None:
    everything = policy("all", "  action: ALLOW\n  rules: [{}]")
    await kit.load(everything + NO_DELETE)
    assert kit.check({**RATINGS, "request.method": "GET"}).status.ok
    denied = kit.check({**RATINGS, "request.method": "DELETE"})
    assert denied.status.code is Code.PERMISSION_DENIED
    assert denied.decided_by == "shop/no-delete"


async def test_no_policy_allows_and_an_allow_without_rules_denies(kit) -> None:
    await kit.load(NO_DELETE)
    assert kit.check(RATINGS).status.ok  # a DENY that does not match: no ALLOW applies
    await kit.load(policy("nothing", "  action: ALLOW"))
    assert not kit.check(RATINGS).status.ok


async def test_root_namespace_policies_apply_mesh_wide(kit) -> None:
    await kit.load(
        policy("global-deny", NO_DELETE.split("spec:\n", 1)[1].split("\n---")[0], "istio-system")
    )
    assert not kit.check(
        {"destination.namespace": "anywhere", "request.method": "DELETE"}
    ).status.ok


@pytest.mark.parametrize(
    ("source", "attributes", "allowed"),
    [
        (
            "namespaces: [shop]",
            {"source.principal": "cluster.local/ns/shop/sa/x", "source.namespace": "shop"},
            True,
        ),
        ("namespaces: [shop]", {"source.namespace": "prod"}, False),
        ("notNamespaces: [prod]", {"source.namespace": "shop"}, True),
        ("notNamespaces: [prod]", {}, True),
        ("ipBlocks: [10.0.0.0/8]", {"source.ip": ipaddress.ip_address("10.4.5.6")}, True),
        ("ipBlocks: [10.0.0.0/8]", {"source.ip": ipaddress.ip_address("11.0.0.1")}, False),
        ("notIpBlocks: [10.0.0.7]", {"source.ip": ipaddress.ip_address("10.0.0.7")}, False),
        ("principals: ['*']", {"source.principal": "cluster.local/ns/a/sa/b"}, True),
        ("principals: ['*']", {}, False),
        ("principals: ['*/sa/storefront']", {"source.principal": "td/ns/x/sa/storefront"}, True),
        ("requestPrincipals: [issuer/*]", {"request.auth.principal": "issuer/alice"}, True),
    ],
)
async def test_source_fields(kit, source: str, attributes: dict, allowed: bool) -> None:
    await kit.load(policy("p", f"  action: ALLOW\n  rules: [{{from: [{{source: {{{source}}}}}]}}]"))
    assert kit.check({"destination.namespace": "shop", **attributes}).status.ok is allowed


@pytest.mark.parametrize(
    ("operation", "attributes", "allowed"),
    [
        ("hosts: [Catalog.shop]", {"request.host": "catalog.shop:9080"}, True),
        ("hosts: ['*.shop']", {"request.host": "ratings.shop"}, True),
        ("hosts: [catalog]", {"request.host": "ratings"}, False),
        ("ports: ['9080']", {"destination.port": 9080}, True),
        ("ports: ['9080']", {"destination.port": 80}, False),
        ("notPorts: ['80']", {"destination.port": 9080}, True),
        ("methods: [GET, HEAD]", {"request.method": "HEAD"}, True),
        ("notMethods: [DELETE]", {"request.method": "DELETE"}, False),
        ("paths: ['/api/*']", {"request.path": "/api/v1?q=1"}, True),
        ("paths: ['*.png']", {"request.path": "/img/logo.png"}, True),
        ("paths: [/exact]", {"request.path": "/exact/more"}, False),
        ("notPaths: ['/admin*']", {"request.path": "/admin/x"}, False),
    ],
)
async def test_operation_fields(kit, operation: str, attributes: dict, allowed: bool) -> None:
    await kit.load(
        policy("p", f"  action: ALLOW\n  rules: [{{to: [{{operation: {{{operation}}}}}]}}]")
    )
    assert kit.check({"destination.namespace": "shop", **attributes}).status.ok is allowed


@pytest.mark.parametrize(
    ("condition", "attributes", "allowed"),
    [
        (
            "{key: 'request.headers[X-User]', values: [alice]}",
            {"request.headers": {"x-user": "alice"}},
            True,
        ),
        ("{key: 'request.headers[x-user]', values: [alice]}", {"request.headers": {}}, False),
        ("{key: 'request.headers[x-user]', notValues: [bob]}", {"request.headers": {}}, True),
        (
            "{key: source.ip, values: [10.0.0.0/8]}",
            {"source.ip": ipaddress.ip_address("10.9.9.9")},
            True,
        ),
        ("{key: destination.port, values: ['9080']}", {"destination.port": 9080}, True),
        ("{key: source.namespace, values: [shop]}", {"source.namespace": "shop"}, True),
        (
            "{key: 'request.auth.claims[iss]', values: [me]}",
            {"request.auth.claims": {"iss": "me"}},
            True,
        ),
    ],
)
async def test_when_conditions(kit, condition: str, attributes: dict, allowed: bool) -> None:
    await kit.load(policy("p", f"  action: ALLOW\n  rules: [{{when: [{condition}]}}]"))
    assert kit.check({"destination.namespace": "shop", **attributes}).status.ok is allowed


async def test_an_unsupported_condition_broadens_deny_and_empties_allow(kit) -> None:
    odd = "{key: experimental.envoy.filters.x, values: [y]}"
    deny = policy(
        "d",
        f"  action: DENY\n  rules: [{{to: [{{operation: {{methods: [POST]}}}}], when: [{odd}]}}]",
    )
    await kit.load(deny)
    assert not kit.check({"destination.namespace": "shop", "request.method": "POST"}).status.ok
    assert kit.check({"destination.namespace": "shop", "request.method": "GET"}).status.ok
    assert any("unsupported condition key" in issue for issue in kit.runtime.current.issues)
    allow = policy("a", f"  action: ALLOW\n  rules: [{{when: [{odd}]}}]")
    await kit.load(allow)
    assert not kit.check({"destination.namespace": "shop"}).status.ok


async def test_authorization_decisions_are_cached_by_what_they_read(kit) -> None:
    await kit.load(READERS)
    for request_id in range(5):
        assert kit.check({**RATINGS, "request.id": str(request_id)}).status.ok
    assert kit.counter("mixer_check_cache_total", result="hit") == 4
