"""Every operator of the expression language, its precedence, literals and map access."""

from __future__ import annotations

from datetime import timedelta
from ipaddress import ip_address

import pytest

from shared.policy_expr import DictBag, ValueType, compile_expression
from shared.policy_expr.types import Value

BAG = DictBag(
    {
        "request.path": "/api/v1/items",
        "request.method": "GET",
        "request.size": 120,
        "response.code": 503,
        "response.duration": timedelta(milliseconds=25),
        "request.headers": {"x-user": "alice", "x-empty": ""},
        "source.labels": {"app": "web", "version": "v2"},
        "source.ip": ip_address("10.0.0.1"),
        "connection.mtls": True,
    }
)


def _eval(text: str) -> Value:
    return compile_expression(text).evaluate(BAG)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('request.method == "GET"', True),
        ('request.method == "POST"', False),
        ('request.method != "POST"', True),
        ('request.method != "GET"', False),
        ("request.size == 120", True),
        ("request.size == 120.0", True),
        ("request.size < 121", True),
        ("request.size < 120", False),
        ("request.size <= 120", True),
        ("request.size > 119.5", True),
        ("request.size > 120", False),
        ("request.size >= 120", True),
        ("response.code >= 500 && response.code < 600", True),
        ('response.duration > "10ms"', True),
        ('response.duration < "1s"', True),
        ('response.duration == "25ms"', True),
        ('"1h" > response.duration', True),
        ("connection.mtls && true", True),
        ("connection.mtls && false", False),
        ("false || connection.mtls", True),
        ("false || false", False),
        ("!connection.mtls", False),
        ("!!connection.mtls", True),
        ("!(request.size > 100)", False),
        ("true == true", True),
        ("source.labels == source.labels", True),
    ],
)
def test_comparison_and_logic(text: str, expected: bool) -> None:
    assert _eval(text) is expected


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        ('request.headers["x-user"]', "alice", ValueType.STRING),
        ('request.headers["x-empty"]', "", ValueType.STRING),
        ('request.headers["x-missing"] | "anonymous"', "anonymous", ValueType.STRING),
        ('request.headers["x-user"] | "anonymous"', "alice", ValueType.STRING),
        ('request.headers["x-empty"] | "fallback"', "", ValueType.STRING),
        ('request.auth.principal | source.labels["app"] | "none"', "web", ValueType.STRING),
        ('source.principal | request.headers["nope"] | "none"', "none", ValueType.STRING),
        ("request.total_size | request.size", 120, ValueType.INT64),
        ("request.total_size | 1.5", 1.5, ValueType.DOUBLE),
        ("request.size | 1.5", 120.0, ValueType.DOUBLE),
        ('request.path + "?q=1"', "/api/v1/items?q=1", ValueType.STRING),
        ('"a" + "b" + "c"', "abc", ValueType.STRING),
        ("request.size + 1", 121, ValueType.INT64),
        ("request.size + 0.5", 120.5, ValueType.DOUBLE),
        ('response.duration + "5ms"', timedelta(milliseconds=30), ValueType.DURATION),
        ("-request.size", -120, ValueType.INT64),
        ("-2.5", -2.5, ValueType.DOUBLE),
        ("-response.duration", timedelta(milliseconds=-25), ValueType.DURATION),
        ('source.labels["ver" + "sion"]', "v2", ValueType.STRING),
        ('request.headers[request.headers["x-user"] | "x"] | "dyn"', "dyn", ValueType.STRING),
        ("source.labels", {"app": "web", "version": "v2"}, ValueType.STRING_MAP),
        ("(request.size)", 120, ValueType.INT64),
    ],
)
def test_values_defaults_and_arithmetic(text: str, expected: Value, kind: ValueType) -> None:
    expression = compile_expression(text)
    assert expression.result_type is kind
    assert expression.evaluate(BAG) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"double \\"quoted\\" \\\\ \\n"', 'double "quoted" \\ \n'),
        ("'single \\'quoted\\''", "single 'quoted'"),
        ('`raw \\n "x"`', 'raw \\n "x"'),
        ("42", 42),
        ("4.5e2", 450.0),
        ("0.25", 0.25),
        ("true", True),
        ("false", False),
        ("9223372036854775807", 2**63 - 1),
    ],
)
def test_literals(text: str, expected: Value) -> None:
    assert _eval(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # && binds tighter than ||
        ("true || false && false", True),
        ("(true || false) && false", False),
        # comparisons bind tighter than && and ||
        ('request.method == "GET" || request.method == "POST" && false', True),
        # | binds tighter than ==: (header | "") == "alice"
        ('request.headers["x-user"] | "" == "alice"', True),
        ('request.headers["nope"] | "" == ""', True),
        # ! binds tighter than ==: (!mtls) == false
        ("!connection.mtls == false", True),
        # + binds tighter than comparisons
        ("request.size + 1 > 120", True),
        # | and + share a level, left to right: ("/x" + missing) | "d" → "d"
        ('"/x" + request.query_params["q"] | "d"', "d"),
        ('request.query_params["q"] | "d" + "!"', "d!"),
        # unary minus before postfix-free numbers, then comparison
        ("-1 < 0", True),
        # method calls bind tighter than !
        ('!request.path.startsWith("/api")', False),
    ],
)
def test_precedence(text: str, expected: Value) -> None:
    assert _eval(text) == expected


def test_short_circuit_skips_the_side_that_would_fail() -> None:
    bag = DictBag({"connection.mtls": False})
    assert compile_expression("connection.mtls && request.size > 1").evaluate(bag) is False
    assert compile_expression("!connection.mtls || request.size > 1").evaluate(bag) is True


def test_ip_comparisons() -> None:
    assert _eval('source.ip == ip("10.0.0.1")') is True
    assert _eval('source.ip != ip("10.0.0.2")') is True
    assert _eval('source.ip == ip("::ffff:10.0.0.1")') is True
    assert _eval('source.ip | ip("0.0.0.0")') == ip_address("10.0.0.1")
    assert compile_expression('source.ip | ip("0.0.0.0")').evaluate(DictBag()) == ip_address(
        "0.0.0.0"
    )
    v6 = DictBag({"source.ip": ip_address("2001:db8::1")})
    assert compile_expression('source.ip == ip("2001:DB8::1")').evaluate(v6) is True
