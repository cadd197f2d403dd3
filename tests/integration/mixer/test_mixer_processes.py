"""Mixer as Envoy sees it: real Galley, two real Mixers, real Redis, Envoy's gRPC APIs.

The clients send exactly what Envoy's ext_authz, rate-limit and ALS filters send; the
tests through real Envoy come with Pilot's filter injection.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.data.accesslog.v3 import accesslog_pb2
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc
from envoy.service.auth.v3 import attribute_context_pb2 as ac
from envoy.service.auth.v3 import external_auth_pb2
from envoy.service.ratelimit.v3 import rls_pb2
from google.protobuf import duration_pb2, struct_pb2, wrappers_pb2

pytestmark = pytest.mark.slow

CATALOG = "catalog.shop.svc.cluster.local"


def check_request(
    *,
    path: str = "/",
    method: str = "GET",
    headers: dict[str, str] | None = None,
    source_ip: str = "10.0.0.5",
    principal: str = "",
    labels: str = "",
) -> external_auth_pb2.CheckRequest:
    """What the server-side sidecar's ext_authz filter sends for one request."""
    request = external_auth_pb2.CheckRequest(
        attributes=ac.AttributeContext(
            source=ac.AttributeContext.Peer(
                address=address_pb2.Address(
                    socket_address=address_pb2.SocketAddress(address=source_ip, port_value=40000)
                ),
                principal=principal,
            ),
            destination=ac.AttributeContext.Peer(
                address=address_pb2.Address(
                    socket_address=address_pb2.SocketAddress(address="10.0.0.9", port_value=9080)
                ),
                service="catalog-v1.shop",
            ),
            request=ac.AttributeContext.Request(
                http=ac.AttributeContext.HttpRequest(
                    method=method, path=path, host=CATALOG, headers=headers or {}
                )
            ),
        )
    )
    if labels:
        request.attributes.context_extensions["destination.labels"] = labels
    return request


def handler(name: str, adapter: str, params: str, namespace: str = "shop") -> str:
    return (
        "apiVersion: config.istio.io/v1alpha2\nkind: handler\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\n"
        f"spec: {{compiledAdapter: {adapter}, params: {params}}}\n---\n"
    )


def instance(name: str, template: str, params: str, namespace: str = "shop") -> str:
    return (
        "apiVersion: config.istio.io/v1alpha2\nkind: instance\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\n"
        f"spec: {{compiledTemplate: {template}, params: {params}}}\n---\n"
    )


def rule(name: str, handler_name: str, instances: str, match: str = "", ns: str = "shop") -> str:
    return (
        "apiVersion: config.istio.io/v1alpha2\nkind: rule\n"
        f"metadata: {{name: {name}, namespace: {ns}}}\n"
        f"spec: {{match: '{match}', "
        f"actions: [{{handler: {handler_name}, instances: {instances}}}]}}\n---\n"
    )


def denied(response: Any) -> bool:
    return response.status.code != 0


async def test_denier_denies_requests_its_rule_matches(mixer_mesh) -> None:
    await mixer_mesh.configure(
        handler("deny", "denier", "{status: {code: 7, message: blocked by policy}}")
        + instance("nothing", "checknothing", "{}")
        + rule("deny", "deny", "[nothing]", 'request.headers["x-blocked"] == "true"'),
        handlers=["deny.handler.shop"],
    )
    response = await mixer_mesh.check(0, check_request(headers={"x-blocked": "true"}))
    assert response.status.code == 7
    assert response.denied_response.status.code == 403
    assert response.denied_response.body == "PERMISSION_DENIED:deny.handler.shop:blocked by policy"
    assert not denied(await mixer_mesh.check(0, check_request(headers={"x-blocked": "no"})))
    assert not denied(await mixer_mesh.check(1, check_request()))  # no header, no match


async def test_blacklists_by_header_and_by_source(mixer_mesh) -> None:
    await mixer_mesh.configure(
        handler("users", "listchecker", "{overrides: [mallory], blacklist: true}")
        + handler(
            "ips",
            "listchecker",
            "{overrides: [10.9.0.0/16], entryType: IP_ADDRESSES, blacklist: true}",
        )
        + instance("user", "listentry", """{value: 'request.headers["x-user"] | ""'}""")
        + instance("ip", "listentry", "{value: source.ip}")
        + rule("users", "users", "[user]")
        + rule("ips", "ips", "[ip]"),
        handlers=["ips.handler.shop", "users.handler.shop"],
    )
    by_header = await mixer_mesh.check(0, check_request(headers={"x-user": "mallory"}))
    assert by_header.denied_response.body.endswith("mallory is blacklisted")
    by_source = await mixer_mesh.check(0, check_request(source_ip="10.9.3.4"))
    assert by_source.denied_response.body.endswith("10.9.3.4 is blacklisted")
    assert not denied(await mixer_mesh.check(0, check_request(headers={"x-user": "alice"})))


async def test_authorization_policy_allow_and_deny_by_path_method_and_principal(mixer_mesh) -> None:
    policies = """
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: readers, namespace: shop}
spec:
  selector: {matchLabels: {app: catalog}}
  action: ALLOW
  rules:
    - from: [{source: {principals: [cluster.local/ns/shop/sa/storefront]}}]
      to: [{operation: {methods: [GET, POST], paths: [/items*]}}]
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: no-admin-writes, namespace: shop}
spec:
  action: DENY
  rules: [{to: [{operation: {methods: [POST], paths: [/items/admin*]}}]}]
---
"""
    # A handler only so that configure() can tell the version arrived.
    marker = handler("marker", "denier", "{status: {code: 0}}")
    await mixer_mesh.configure(policies + marker, handlers=["marker.handler.shop"])
    storefront = "spiffe://cluster.local/ns/shop/sa/storefront"
    app = '{"app": "catalog"}'

    async def allowed(**request: Any) -> bool:
        return not denied(await mixer_mesh.check(1, check_request(labels=app, **request)))

    assert await allowed(path="/items/7", principal=storefront)
    assert not await allowed(path="/items/7", principal="spiffe://cluster.local/ns/shop/sa/ratings")
    assert not await allowed(path="/orders", principal=storefront)
    assert not await allowed(path="/items", method="DELETE", principal=storefront)
    denial = await mixer_mesh.check(
        1, check_request(labels=app, path="/items/admin", method="POST", principal=storefront)
    )
    assert denial.denied_response.status.code == 403
    assert "no-admin-writes" in denial.denied_response.body


def quota_config(name: str, algorithm: str, max_amount: int, window: str, redis: int) -> str:
    quota = f"{name}.instance.shop"
    return (
        handler(
            name,
            "redisquota",
            f"{{redisServerUrl: '127.0.0.1:{redis}', "
            f"quotas: [{{name: {quota}, maxAmount: {max_amount}, validDuration: {window}, "
            f"bucketDuration: 100ms, rateLimitAlgorithm: {algorithm}}}]}}",
        )
        + instance(name, "quota", """{dimensions: {source: 'source.workload.name | "x"'}}""")
        + rule(name, name, f"[{name}]", f'destination.service.host == "{CATALOG}"')
    )


def rls(
    quota: str, *, source: str = "storefront-v1.shop", request_id: str = ""
) -> rls_pb2.RateLimitRequest:
    """What Envoy's rate-limit filter sends with the actions Pilot configures."""
    entries = [
        ("quota", f"{quota}.instance.shop"),
        ("destination_cluster", f"outbound|9080||{CATALOG}"),
        ("source_cluster", source),
    ]
    if request_id:
        entries.append(("request.id", request_id))
    return rls_pb2.RateLimitRequest(
        domain="mixer",
        descriptors=[
            ratelimit_pb2.RateLimitDescriptor(
                entries=[
                    ratelimit_pb2.RateLimitDescriptor.Entry(key=k, value=v) for k, v in entries
                ]
            )
        ],
    )


OVER = rls_pb2.RateLimitResponse.OVER_LIMIT


async def test_quota_is_shared_by_two_mixers_through_one_redis(mixer_mesh) -> None:
    await mixer_mesh.configure(
        quota_config("shared", "FIXED_WINDOW", 5, "60s", mixer_mesh.redis.port),
        handlers=["shared.handler.shop"],
    )
    codes = [(await mixer_mesh.rate_limit(i % 2, rls("shared"))).overall_code for i in range(7)]
    assert codes == [rls_pb2.RateLimitResponse.OK] * 5 + [OVER] * 2
    last = await mixer_mesh.rate_limit(0, rls("shared"))
    status = last.statuses[0]
    assert (status.current_limit.requests_per_unit, status.current_limit.unit) == (5, 2)  # MINUTE
    assert status.limit_remaining == 0
    # Another source has its own counter; a retried request id is not counted twice.
    other = [
        await mixer_mesh.rate_limit(i % 2, rls("shared", source="ratings-v1.shop", request_id="r1"))
        for i in range(6)
    ]
    assert {response.overall_code for response in other} == {rls_pb2.RateLimitResponse.OK}


async def wait_for_window_start(window: float) -> None:
    """Sleep until just after a multiple of ``window`` seconds of wall-clock time."""
    await asyncio.sleep(window - time.time() % window + 0.05)


async def test_fixed_and_rolling_windows_differ_at_the_window_edge(mixer_mesh) -> None:
    await mixer_mesh.configure(
        quota_config("fixed", "FIXED_WINDOW", 4, "2s", mixer_mesh.redis.port)
        + quota_config("rolling", "ROLLING_WINDOW", 4, "2s", mixer_mesh.redis.port),
        handlers=["fixed.handler.shop", "rolling.handler.shop"],
    )

    async def grants(quota: str, count: int) -> int:
        responses = [await mixer_mesh.rate_limit(0, rls(quota)) for _ in range(count)]
        return sum(response.overall_code != OVER for response in responses)

    await wait_for_window_start(2.0)  # t = 0: two of each
    assert (await grants("fixed", 2), await grants("rolling", 2)) == (2, 2)
    await asyncio.sleep(1.0)  # t = 1: two more each, both full now
    assert (await grants("fixed", 3), await grants("rolling", 3)) == (2, 2)
    await wait_for_window_start(2.0)
    await asyncio.sleep(0.3)  # t = 2.3: a new fixed window; the rolling one still holds t = 1
    assert await grants("fixed", 5) == 4
    assert await grants("rolling", 5) == 2


def log_message(
    entries: list[tuple[str, int]], *, identify: bool
) -> als_pb2.StreamAccessLogsMessage:
    """An ALS message as a server-side sidecar streams it."""
    message = als_pb2.StreamAccessLogsMessage()
    if identify:
        metadata = struct_pb2.Struct()
        metadata.update(
            {"WORKLOAD_NAME": "catalog-v1", "NAMESPACE": "shop", "LABELS": {"app": "catalog"}}
        )
        message.identifier.node.id = "sidecar~10.0.0.9~catalog-v1.shop~shop.svc.cluster.local"
        message.identifier.node.cluster = "catalog-v1.shop"
        message.identifier.node.metadata.CopyFrom(metadata)
        message.identifier.log_name = "splitmesh"
    for host, code in entries:
        message.http_logs.log_entry.append(
            accesslog_pb2.HTTPAccessLogEntry(
                common_properties=accesslog_pb2.AccessLogCommon(
                    upstream_cluster=f"inbound|9080|http|{host}",
                    time_to_last_downstream_tx_byte=duration_pb2.Duration(nanos=3_000_000),
                ),
                request=accesslog_pb2.HTTPRequestProperties(
                    request_method=base_pb2.GET, authority=host, path="/", request_body_bytes=10
                ),
                response=accesslog_pb2.HTTPResponseProperties(
                    response_code=wrappers_pb2.UInt32Value(value=code), response_body_bytes=100
                ),
            )
        )
    return message


async def test_prometheus_counts_equal_the_requests_reported(mixer_mesh) -> None:
    host = "reports.shop.svc.cluster.local"
    sent = {200: 37, 404: 5, 503: 3}
    entries = [(host, code) for code, count in sent.items() for _ in range(count)]
    mixer = mixer_mesh.mixers[0]
    async with grpc.aio.insecure_channel(mixer.address("grpc")) as channel:
        stub = als_pb2_grpc.AccessLogServiceStub(channel)

        async def stream() -> Any:
            for index in range(0, len(entries), 10):
                yield log_message(entries[index : index + 10], identify=index == 0)

        await stub.StreamAccessLogs(stream())

    def counted(code: int) -> float:
        return mixer.metric(
            "istio_requests_total",
            destination_service=host,
            response_code=str(code),
            reporter="destination",
            destination_workload="catalog-v1",
        )

    deadline = time.monotonic() + 15
    while sum(counted(code) for code in sent) < sum(sent.values()):
        assert time.monotonic() < deadline, mixer.log_tail()
        await asyncio.sleep(0.05)
    assert {code: counted(code) for code in sent} == sent
    durations = mixer.metric("istio_request_duration_milliseconds_count", destination_service=host)
    assert durations == sum(sent.values())


async def test_a_malformed_access_log_stream_is_closed_and_others_go_on(mixer_mesh) -> None:
    host = "malformed.shop.svc.cluster.local"
    mixer = mixer_mesh.mixers[1]
    async with grpc.aio.insecure_channel(mixer.address("grpc")) as channel:
        stub = als_pb2_grpc.AccessLogServiceStub(channel)
        raw = channel.stream_unary(
            "/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs",
            request_serializer=lambda data: data,
            response_deserializer=als_pb2.StreamAccessLogsResponse.FromString,
        )
        good_gate = asyncio.Event()

        async def good() -> Any:
            yield log_message([(host, 200)] * 3, identify=True)
            await good_gate.wait()
            yield log_message([(host, 200)] * 2, identify=False)

        async def no_identifier() -> Any:
            yield log_message([(host, 500)], identify=False)

        async def garbage() -> Any:
            yield b"\xff\xff\xff\xff not a protobuf"

        healthy = asyncio.ensure_future(stub.StreamAccessLogs(good()))
        for bad in (stub.StreamAccessLogs(no_identifier()), raw(garbage())):
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await bad
            assert failure.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        good_gate.set()
        await healthy

    deadline = time.monotonic() + 15
    while mixer.metric("istio_requests_total", destination_service=host) < 5:
        assert time.monotonic() < deadline, mixer.log_tail()
        await asyncio.sleep(0.05)
    assert mixer.metric("istio_requests_total", destination_service=host, response_code="500") == 0
    rejected = {
        reason: mixer.metric("mixer_access_log_streams_rejected_total", reason=reason)
        for reason in ("malformed", "undecodable")
    }
    assert rejected == {"malformed": 1, "undecodable": 1}


async def test_redis_down_or_hung_quota_fails_open_or_closed_within_the_timeout(mixer_mesh) -> None:
    await mixer_mesh.configure(
        quota_config("outage", "FIXED_WINDOW", 100, "60s", mixer_mesh.redis.port),
        handlers=["outage.handler.shop"],
    )
    ok = rls_pb2.RateLimitResponse.OK
    assert (await mixer_mesh.rate_limit(1, rls("outage"))).overall_code == ok

    async def answers_within_the_timeout() -> None:
        for mixer, expected in ((0, ok), (1, OVER)):  # mixers[0] fails open, [1] closed
            started = time.monotonic()
            response = await mixer_mesh.rate_limit(mixer, rls("outage"))
            assert response.overall_code == expected
            assert time.monotonic() - started < 0.5 + 1.0  # the quota timeout, plus slack

    mixer_mesh.redis.freeze(True)  # connected, but no answer
    try:
        await answers_within_the_timeout()
    finally:
        mixer_mesh.redis.freeze(False)
    mixer_mesh.redis.stop()  # refused
    try:
        await answers_within_the_timeout()
    finally:
        mixer_mesh.redis.start()
    deadline = time.monotonic() + 15
    while (await mixer_mesh.rate_limit(1, rls("outage"))).overall_code != ok:
        assert time.monotonic() < deadline, "quota did not recover after Redis came back"
        await asyncio.sleep(0.05)
