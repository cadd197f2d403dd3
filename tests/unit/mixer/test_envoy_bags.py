"""Attribute bags from Envoy's messages: ext_authz CheckRequest, ALS entries, RLS descriptors."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.data.accesslog.v3 import accesslog_pb2
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.auth.v3 import attribute_context_pb2 as ac
from envoy.service.auth.v3 import external_auth_pb2
from envoy.service.ratelimit.v3 import rls_pb2
from google.protobuf import duration_pb2, timestamp_pb2, wrappers_pb2

from services.mixer.adapters.access_log_bag import Reporter, access_log_bag
from services.mixer.adapters.check_bag import check_bag
from services.mixer.adapters.quota_request import quota_calls
from shared.policy_expr import EvaluationError, compile_expression


def address(ip: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address=ip, port_value=port)
    )


def check_request(**http: object) -> external_auth_pb2.CheckRequest:
    return external_auth_pb2.CheckRequest(
        attributes=ac.AttributeContext(
            source=ac.AttributeContext.Peer(
                address=address("10.0.0.5", 41000),
                principal="spiffe://cluster.local/ns/shop/sa/storefront",
                service="storefront-v1.shop",
            ),
            destination=ac.AttributeContext.Peer(
                address=address("10.0.0.9", 9080), service="catalog-v1.shop"
            ),
            request=ac.AttributeContext.Request(
                time=timestamp_pb2.Timestamp(seconds=1_700_000_000),
                http=ac.AttributeContext.HttpRequest(**http),  # type: ignore[arg-type]
            ),
        )
    )


def test_check_request_attributes_use_istio_names() -> None:
    bag = check_bag(
        check_request(
            method="GET",
            path="/items?id=7",
            host="catalog.shop.svc.cluster.local:9080",
            headers={"user-agent": "curl/8", "x-user": "alice"},
            size=12,
            id="req-1",
        )
    )
    expected = {
        "source.ip": ipaddress.ip_address("10.0.0.5"),
        "source.principal": "cluster.local/ns/shop/sa/storefront",
        "source.namespace": "shop",
        "source.workload.name": "storefront-v1",
        "destination.ip": ipaddress.ip_address("10.0.0.9"),
        "destination.port": 9080,
        "destination.workload.name": "catalog-v1",
        "destination.service.host": "catalog.shop.svc.cluster.local",
        "destination.service.name": "catalog",
        "destination.namespace": "shop",
        "request.method": "GET",
        "request.path": "/items?id=7",
        "request.url_path": "/items",
        "request.query_params": {"id": "7"},
        "request.useragent": "curl/8",
        "request.size": 12,
        "request.id": "req-1",
        "request.time": datetime.fromtimestamp(1_700_000_000, UTC),
        "connection.mtls": True,
        "context.protocol": "http",
        "context.reporter.kind": "inbound",
    }
    assert {name: bag.get(name) for name in expected} == expected
    assert bag.get("request.headers")["x-user"] == "alice"  # type: ignore[index]


def test_an_empty_check_request_gives_absent_attributes_not_errors() -> None:
    bag = check_bag(external_auth_pb2.CheckRequest())
    for name in ("source.ip", "request.path", "request.size", "destination.port", "request.time"):
        assert bag.get(name) is None, name
    assert bag.get("connection.mtls") is False
    assert compile_expression('request.headers["x"] | "none"').evaluate(bag) == "none"


def test_context_extensions_override_typed_and_mismatches_stay_raw() -> None:
    request = check_request(host="whatever")
    request.attributes.context_extensions.update(
        {
            "destination.service.host": "ratings.prod.svc.cluster.local",
            "destination.port": "not-a-port",
            "destination.labels": '{"app": "ratings"}',
            "connection.mtls": "false",
            "unknown.key": "ignored",
        }
    )
    bag = check_bag(request)
    assert bag.get("destination.namespace") == "prod"
    assert bag.get("destination.labels") == {"app": "ratings"}
    assert bag.get("connection.mtls") is False
    assert bag.get("unknown.key") is None
    assert bag.get("destination.port") == "not-a-port"
    try:
        compile_expression("destination.port == 80").evaluate(bag)
    except EvaluationError as exc:
        assert "destination.port" in str(exc)
    else:
        raise AssertionError("a mistyped attribute must fail evaluation")


def log_entry(cluster: str, *, code: int = 200) -> accesslog_pb2.HTTPAccessLogEntry:
    certificate = accesslog_pb2.TLSProperties.CertificateProperties
    san = certificate.SubjectAltName
    return accesslog_pb2.HTTPAccessLogEntry(
        common_properties=accesslog_pb2.AccessLogCommon(
            downstream_remote_address=address("10.0.0.5", 41000),
            downstream_local_address=address("10.0.0.9", 9080),
            upstream_remote_address=address("10.0.0.20", 8080),
            upstream_cluster=cluster,
            start_time=timestamp_pb2.Timestamp(seconds=1_700_000_000),
            time_to_last_downstream_tx_byte=duration_pb2.Duration(nanos=12_500_000),
            tls_properties=accesslog_pb2.TLSProperties(
                peer_certificate_properties=certificate(
                    subject_alt_name=[san(uri="spiffe://cluster.local/ns/shop/sa/storefront")]
                ),
                local_certificate_properties=certificate(
                    subject_alt_name=[san(uri="spiffe://cluster.local/ns/shop/sa/catalog")]
                ),
            ),
            response_flags=accesslog_pb2.ResponseFlags(upstream_connection_failure=True),
        ),
        request=accesslog_pb2.HTTPRequestProperties(
            request_method=base_pb2.GET,
            authority="catalog.shop.svc.cluster.local",
            path="/items",
            request_body_bytes=10,
            request_headers_bytes=90,
            request_headers={"x-envoy-downstream-service-cluster": "storefront-v1.shop"},
        ),
        response=accesslog_pb2.HTTPResponseProperties(
            response_code=wrappers_pb2.UInt32Value(value=code), response_body_bytes=300
        ),
    )


REPORTER = Reporter(workload="catalog-v1", namespace="shop", labels={"app": "catalog"})


def test_inbound_entries_describe_the_reporter_as_destination() -> None:
    bag = access_log_bag(log_entry("inbound|9080|http|catalog.shop.svc.cluster.local"), REPORTER)
    expected = {
        "context.reporter.kind": "inbound",
        "destination.workload.name": "catalog-v1",
        "destination.labels": {"app": "catalog"},
        "destination.service.host": "catalog.shop.svc.cluster.local",
        "destination.port": 9080,
        "destination.ip": ipaddress.ip_address("10.0.0.9"),
        "destination.principal": "cluster.local/ns/shop/sa/catalog",
        "source.principal": "cluster.local/ns/shop/sa/storefront",
        "source.workload.name": "storefront-v1",
        "source.ip": ipaddress.ip_address("10.0.0.5"),
        "source.labels": None,
        "request.method": "GET",
        "request.size": 10,
        "request.total_size": 100,
        "response.code": 200,
        "response.size": 300,
        "response.duration": timedelta(milliseconds=12.5),
        "connection.mtls": True,
        "context.proxy_error_code": "UF",
    }
    assert {name: bag.get(name) for name in expected} == expected


def test_outbound_entries_describe_the_reporter_as_source() -> None:
    bag = access_log_bag(log_entry("outbound|9080||catalog.shop.svc.cluster.local"), REPORTER)
    assert bag.get("context.reporter.kind") == "outbound"
    assert bag.get("source.workload.name") == "catalog-v1"
    assert bag.get("source.labels") == {"app": "catalog"}
    assert bag.get("destination.workload.name") is None
    assert bag.get("destination.ip") == ipaddress.ip_address("10.0.0.20")
    assert bag.get("source.principal") == "cluster.local/ns/shop/sa/catalog"


def test_reporter_reads_node_metadata_and_falls_back_to_the_node_cluster() -> None:
    reporter = Reporter.from_metadata({"LABELS": {"app": "x"}}, "ratings-v2.prod")
    assert (reporter.workload, reporter.namespace, reporter.labels) == (
        "ratings-v2",
        "prod",
        {"app": "x"},
    )


def descriptor(
    *entries: tuple[str, str], hits: int | None = None
) -> ratelimit_pb2.RateLimitDescriptor:
    message = ratelimit_pb2.RateLimitDescriptor(
        entries=[ratelimit_pb2.RateLimitDescriptor.Entry(key=k, value=v) for k, v in entries]
    )
    if hits is not None:
        message.hits_addend.value = hits
    return message


def test_rate_limit_descriptors_become_quota_calls() -> None:
    request = rls_pb2.RateLimitRequest(
        domain="mixer",
        descriptors=[
            descriptor(
                ("quota", "requestcount.instance.shop"),
                ("destination_cluster", "outbound|9080||catalog.shop.svc.cluster.local"),
                ("remote_address", "10.0.0.5"),
                ("source_cluster", "storefront-v1.shop"),
                ("request.headers[X-User]", "alice"),
                ("request.id", "abc"),
                ("request.path", "/items"),
            ),
            descriptor(("generic_key", "nothing")),
            descriptor(("quota", "other.shop"), hits=3),
        ],
    )
    first, second, third = quota_calls(request)
    assert first is not None and second is None and third is not None
    assert first.quota == "requestcount.instance.shop"
    assert (first.args.amount, first.args.dedup_id) == (1, "abc/requestcount.instance.shop")
    assert dict(first.bag) == {
        "destination.service.host": "catalog.shop.svc.cluster.local",
        "destination.port": 9080,
        "destination.service.name": "catalog",
        "destination.service.namespace": "shop",
        "destination.namespace": "shop",
        "source.ip": ipaddress.ip_address("10.0.0.5"),
        "source.workload.name": "storefront-v1",
        "source.workload.namespace": "shop",
        "source.namespace": "shop",
        "request.headers": {"x-user": "alice"},
        "request.id": "abc",
        "request.path": "/items",
    }
    assert (third.args.amount, third.args.dedup_id) == (3, "")
