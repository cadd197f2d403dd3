"""Every function and method: results, compile-time checks of constants, run-time errors."""

from __future__ import annotations

from datetime import UTC, datetime
from ipaddress import ip_address
from pathlib import Path

import pytest

from shared.policy_expr import (
    FUNCTIONS,
    DictBag,
    EvaluationError,
    ExpressionError,
    ValueType,
    compile_expression,
)
from shared.policy_expr.types import Value

BAG = DictBag(
    {
        "request.path": "/api/v1/items",
        "request.host": "Catalog.Shop.svc.cluster.local",
        "destination.service.host": "catalog.shop.svc.cluster.local",
        "request.headers": {"x-ip": "10.1.2.3", "x-bad-ip": "ten", "x-re": "(", "k": "v"},
        "request.time": datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC),
        "response.code": 404,
    }
)


def _eval(text: str) -> Value:
    return compile_expression(text).evaluate(BAG)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('match(destination.service.host, "*.shop.svc.cluster.local")', True),
        ('match(destination.service.host, "*.other.svc.cluster.local")', False),
        ('match(request.path, "/api/*")', True),
        ('match(request.path, "/web/*")', False),
        ('match(request.path, "/api/v1/items")', True),
        ('match(request.path, "/api")', False),
        ('request.path.startsWith("/api/")', True),
        ('request.path.startsWith("/web")', False),
        ('startsWith(request.path, "/api")', True),
        ('request.path.endsWith("/items")', True),
        ('request.path.endsWith("/item")', False),
        ('endsWith(request.path, "items")', True),
        ('(request.headers["missing"] | "/x").startsWith("/x")', True),
        ('request.headers["k"].endsWith("v")', True),
        ('"^/api/v[0-9]+/".matches(request.path)', True),
        ('"^/web".matches(request.path)', False),
        ('"items$".matches(request.path)', True),
        ("toLower(request.host) == destination.service.host", True),
        ('conditionalString(response.code == 404, "missing", "found")', "missing"),
        ('conditional(response.code >= 500, "error", "ok")', "ok"),
        ("conditional(response.code >= 400, 1, 2.5)", 1.0),
        ("size(request.path)", 13),
        ("size(request.headers)", 4),
        ("request.path.size()", 13),
        ("size(emptyStringMap())", 0),
        ('(source.labels | emptyStringMap())["app"] | "none"', "none"),
        ('emptyStringMap()["app"] | "none"', "none"),
        ('ip("10.0.0.1") == ip("10.0.0.1")', True),
        ('ip(request.headers["x-ip"]) == ip("10.1.2.3")', True),
        ('dnsName("Catalog.Shop.") == dnsName("catalog.shop")', True),
        ('dnsName("a.b") == dnsName("a.c")', False),
        ('email("Ann@Example.COM") == email("Ann@example.com")', True),
        ('email("ann@example.com") == email("bob@example.com")', False),
        ('uri("http://istio.io/a") == uri("http://istio.io/a")', True),
        ('request.time == timestamp("2020-01-02T03:04:05Z")', True),
        ('request.time < timestamp("2020-01-02T04:04:05+01:00")', False),
        ('request.time > timestamp("2019-12-31T23:59:59-05:00")', True),
    ],
)
def test_function_results(text: str, expected: Value) -> None:
    assert _eval(text) == expected


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('ip("1.2.3.4")', ValueType.IP_ADDRESS),
        ('timestamp("2015-01-02T15:04:35Z")', ValueType.TIMESTAMP),
        ('dnsName("www.istio.io")', ValueType.DNS_NAME),
        ('email("awesome@istio.io")', ValueType.EMAIL_ADDRESS),
        ('uri("http://istio.io")', ValueType.URI),
        ("emptyStringMap()", ValueType.STRING_MAP),
        ('toLower("A")', ValueType.STRING),
        ("size(request.path)", ValueType.INT64),
        ('conditional(true, ip("1.1.1.1"), source.ip)', ValueType.IP_ADDRESS),
    ],
)
def test_function_result_types(text: str, kind: ValueType) -> None:
    assert compile_expression(text).result_type is kind


def test_every_registered_function_is_exercised_here() -> None:
    source = Path(__file__).read_text(encoding="utf-8")
    for name in FUNCTIONS:
        assert f"{name}(" in source, name


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ('source.ip == ip("10.0.0.300")', 17, "not an IP address"),
        ('timestamp("2015-01-02")', 11, "RFC 3339"),
        ('timestamp("yesterday")', 11, "RFC 3339"),
        ('dnsName("bad_name!.io")', 9, "not a DNS name"),
        ('dnsName("-a.io")', 9, "not a DNS name"),
        ('email("no-at-sign")', 7, "not an e-mail address"),
        ('email("a@bad_domain")', 7, "not an e-mail address"),
        ('uri("")', 5, "not a URI"),
        ('"(unclosed".matches(request.path)', 1, "not a regular expression"),
        ('response.duration > "ten seconds"', 21, "not a duration"),
        ('ip(request.path, "x")', 1, "ip() takes 1 argument, got 2"),
        ("match(request.path)", 1, "match() takes 2 arguments, got 1"),
        ("emptyStringMap(1)", 1, "takes 0 arguments, got 1"),
        ('request.path.startsWith("a", "b")', 14, "startsWith() takes 1 argument, got 2"),
        ("ip(42)", 4, "argument 1 of ip() must be STRING, not INT64"),
        ("match(request.path, 7)", 21, "argument 2 of match() must be STRING, not INT64"),
        ('response.code.startsWith("4")', 1, "startsWith() is a method of STRING, not of INT64"),
        ("request.path.ip()", 14, "ip() is a function, not a method"),
        ('matches("a", request.path)', 1, "matches() is a method"),
        ('conditional(request.path, "a", "b")', 13, "condition of conditional() must be BOOL"),
        ('conditional(true, "a", 1)', 1, "conditional() branches must have one type"),
        ("size(response.code)", 6, "size() needs a STRING or a STRING_MAP, not INT64"),
        ('lower("A")', 1, "unknown function 'lower'"),
        ('toLowr("A")', 1, "did you mean toLower()?"),
        ("nosuch(no.such.attribute)", 1, "unknown function 'nosuch'"),
        ('request.path.conditional("a", "b")', 14, "conditional() is a function, not a method"),
    ],
)
def test_bad_calls_are_compile_errors_at_their_position(
    text: str, position: int, words: str
) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(text)
    assert caught.value.position == position, str(caught.value)
    assert words in caught.value.message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('ip(request.headers["x-bad-ip"])', "not an IP address"),
        ('request.headers["x-re"].matches(request.path)', "not a regular expression"),
        ("timestamp(request.path) == request.time", "RFC 3339"),
    ],
)
def test_conversions_of_request_values_fail_at_evaluation(text: str, words: str) -> None:
    expression = compile_expression(text)
    with pytest.raises(EvaluationError, match=words):
        expression.evaluate(BAG)


def test_conditional_evaluates_only_the_chosen_branch() -> None:
    expression = compile_expression('conditional(request.path == "/", request.host, "none")')
    assert expression.evaluate(DictBag({"request.path": "/x"})) == "none"


def test_ip_from_a_header_matches_the_bag_ip_in_any_spelling() -> None:
    bag = DictBag({"source.ip": ip_address("::ffff:10.1.2.3"), "request.headers": {}})
    assert compile_expression('source.ip == ip("10.1.2.3")').evaluate(bag) is True
