"""Check and Quota through the real core: rules, denier, listchecker, fail policy, scoping."""

from __future__ import annotations

import ipaddress

from services.mixer.core.status import Code

DENY_BLOCKED = """
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {name: deny-blocked, namespace: shop}
spec:
  compiledAdapter: denier
  params: {status: {code: 7, message: blocked by policy}, validDuration: 10s, validUseCount: 3}
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {name: denyrequest, namespace: shop}
spec: {compiledTemplate: checknothing}
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {name: deny-blocked, namespace: shop}
spec:
  match: request.headers["x-blocked"] == "true"
  actions: [{handler: deny-blocked, instances: [denyrequest]}]
"""

SHOP = {"destination.namespace": "shop"}


def blacklist(entry_type: str, value: str, entries: str, blacklist: bool = True) -> str:
    return f"""
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {{name: lists, namespace: istio-system}}
spec:
  compiledAdapter: listchecker
  params: {{overrides: {entries}, entryType: {entry_type}, blacklist: {str(blacklist).lower()}}}
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {{name: entry, namespace: istio-system}}
spec:
  compiledTemplate: listentry
  params: {{value: '{value}'}}
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {{name: lists, namespace: istio-system}}
spec:
  actions: [{{handler: lists.istio-system, instances: [entry.istio-system]}}]
"""


async def test_denier_denies_only_requests_its_rule_matches(kit) -> None:
    await kit.load(DENY_BLOCKED)
    denied = kit.check({**SHOP, "request.headers": {"x-blocked": "true"}})
    assert denied.status.code is Code.PERMISSION_DENIED
    assert denied.status.message == "blocked by policy"
    assert denied.decided_by == "deny-blocked.handler.shop"
    assert (denied.valid_duration, denied.valid_use_count) == (10.0, 3)
    assert kit.check({**SHOP, "request.headers": {"x-blocked": "no"}}).status.ok


async def test_a_request_without_the_header_a_match_reads_is_not_matched(kit) -> None:
    await kit.load(DENY_BLOCKED)
    assert kit.check({**SHOP, "request.headers": {}}).status.ok
    assert kit.check(SHOP).status.ok
    assert kit.counter("mixer_rule_errors_total") == 0


async def test_rules_outside_the_root_namespace_apply_to_their_namespace_only(kit) -> None:
    await kit.load(DENY_BLOCKED)
    headers = {"request.headers": {"x-blocked": "true"}}
    assert kit.check({"destination.namespace": "other", **headers}).status.ok
    assert not kit.check({"destination.namespace": "shop", **headers}).status.ok


async def test_blacklist_by_header_denies_listed_values(kit) -> None:
    await kit.load(blacklist("STRINGS", 'request.headers["x-user"] | ""', "[mallory, eve]"))
    denied = kit.check({"request.headers": {"x-user": "eve"}})
    assert denied.status.code is Code.PERMISSION_DENIED
    assert denied.status.message == "eve is blacklisted"
    assert kit.check({"request.headers": {"x-user": "alice"}}).status.ok
    assert kit.check({"request.headers": {}}).status.ok


async def test_blacklist_by_source_ip_matches_cidr_blocks(kit) -> None:
    await kit.load(blacklist("IP_ADDRESSES", "source.ip", "[10.1.0.0/16, 192.168.0.7]"))
    assert not kit.check({"source.ip": ipaddress.ip_address("10.1.2.3")}).status.ok
    assert not kit.check({"source.ip": ipaddress.ip_address("192.168.0.7")}).status.ok
    assert kit.check({"source.ip": ipaddress.ip_address("10.2.0.1")}).status.ok


async def test_whitelist_refuses_values_not_listed_with_not_found(kit) -> None:
    await kit.load(
        blacklist("CASE_INSENSITIVE_STRINGS", "source.workload.name", "[Catalog]", False)
    )
    assert kit.check({"source.workload.name": "catalog"}).status.ok
    refused = kit.check({"source.workload.name": "ratings"})
    assert refused.status.code is Code.NOT_FOUND
    assert refused.status.message == "ratings is not whitelisted"


async def test_regex_entries_match_whole_values(kit) -> None:
    await kit.load(blacklist("REGEX", "request.path", "['/admin/.*']"))
    assert not kit.check({"request.path": "/admin/users"}).status.ok
    assert kit.check({"request.path": "/api/admin/x"}).status.ok


TYPE_MISMATCH = DENY_BLOCKED.replace(
    'request.headers["x-blocked"] == "true"', "destination.port == 8080"
)


async def test_runtime_type_mismatch_fails_closed_per_mesh_default(kit) -> None:
    await kit.load(TYPE_MISMATCH)
    # A bag that carries a string where the vocabulary says INT64.
    failed = kit.check({**SHOP, "destination.port": "8080"})
    assert failed.status.code is Code.INTERNAL
    assert "rule shop/deny-blocked" in failed.status.message
    assert kit.counter("mixer_rule_errors_total", rule="shop/deny-blocked") == 1
    # Not cached: a second identical request is evaluated (and counted) again.
    kit.check({**SHOP, "destination.port": "8080"})
    assert kit.counter("mixer_rule_errors_total") == 2


async def test_runtime_type_mismatch_skips_the_rule_when_failing_open(kit_factory) -> None:
    kit = kit_factory(fail_open=True)
    await kit.load(TYPE_MISMATCH)
    assert kit.check({**SHOP, "destination.port": "8080"}).status.ok
    assert kit.counter("mixer_rule_errors_total") == 1
    assert not kit.check({**SHOP, "destination.port": 8080}).status.ok


async def test_mesh_config_policy_check_fail_open_sets_the_default(kit) -> None:
    mesh = """
apiVersion: mesh.istio.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh, namespace: istio-system}
spec: {policyCheckFailOpen: true}
"""
    await kit.load(TYPE_MISMATCH + "---" + mesh)
    assert kit.runtime.current.fail_open
    assert kit.check({**SHOP, "destination.port": "8080"}).status.ok


async def test_check_cache_reuses_decisions_within_ttl_and_use_count(kit) -> None:
    await kit.load(DENY_BLOCKED)
    request = {**SHOP, "request.headers": {"x-blocked": "true", "x-request-id": "1"}}
    for _ in range(4):
        assert not kit.check(request).status.ok
    # One miss, then three hits: the denier allows 3 uses.
    assert kit.counter("mixer_check_cache_total", result="hit") == 3
    # Another request id is the same decision: the id was never read.
    kit.check({**SHOP, "request.headers": {"x-blocked": "true", "x-request-id": "2"}})
    assert kit.counter("mixer_check_cache_total", result="hit") == 3  # uses exhausted
    kit.check(request)
    assert kit.counter("mixer_check_cache_total", result="hit") == 4
    kit.clock.advance(11)
    kit.check(request)
    assert kit.counter("mixer_check_cache_total", result="miss") == 3


async def test_a_new_config_version_clears_the_check_cache(kit) -> None:
    await kit.load(DENY_BLOCKED)
    request = {**SHOP, "request.headers": {"x-blocked": "true"}}
    assert not kit.check(request).status.ok
    await kit.load(DENY_BLOCKED.replace('"true"', '"yes"'))
    assert kit.check(request).status.ok


QUOTA = """
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {name: quota, namespace: shop}
spec:
  compiledAdapter: memquota
  params:
    quotas:
      - name: requestcount.instance.shop
        maxAmount: 3
        validDuration: 10s
        overrides:
          - {dimensions: {source: vip}, maxAmount: 5}
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {name: requestcount, namespace: shop}
spec:
  compiledTemplate: quota
  params: {dimensions: {source: 'source.workload.name | "unknown"'}}
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {name: quota, namespace: shop}
spec:
  match: destination.service.host == "catalog.shop.svc.cluster.local"
  actions: [{handler: quota, instances: [requestcount]}]
"""
CATALOG = {
    "destination.namespace": "shop",
    "destination.service.host": "catalog.shop.svc.cluster.local",
}


async def test_memquota_grants_max_amount_per_dimension_then_refuses(kit) -> None:
    await kit.load(QUOTA)
    a = {**CATALOG, "source.workload.name": "a"}
    results = [(await kit.quota("requestcount.instance.shop", a)).granted for _ in range(4)]
    assert results == [1, 1, 1, 0]
    refused = await kit.quota("requestcount.instance.shop", a)
    assert refused.status.code is Code.RESOURCE_EXHAUSTED
    assert (refused.limit, refused.remaining) == (3, 0)
    # Another source has its own counter; the override raises the limit for "vip".
    assert (
        await kit.quota("requestcount.instance.shop", {**CATALOG, "source.workload.name": "b"})
    ).granted == 1
    vip = {**CATALOG, "source.workload.name": "vip"}
    assert [(await kit.quota("requestcount.shop", vip)).granted for _ in range(6)] == [1] * 5 + [0]


async def test_quota_that_no_rule_applies_to_is_granted(kit) -> None:
    await kit.load(QUOTA)
    other = {"destination.namespace": "shop", "destination.service.host": "ratings"}
    granted = [(await kit.quota("requestcount.instance.shop", other)).granted for _ in range(5)]
    assert granted == [1] * 5
    assert (await kit.quota("unknown.instance.shop", CATALOG)).granted == 1


async def test_deduplication_id_makes_a_retry_free(kit) -> None:
    await kit.load(QUOTA)
    for _ in range(5):
        assert (await kit.quota("requestcount.instance.shop", CATALOG, dedup="r1")).granted == 1
    assert [(await kit.quota("requestcount.instance.shop", CATALOG)).granted for _ in range(3)] == [
        1,
        1,
        0,
    ]
