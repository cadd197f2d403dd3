"""Compile errors carry the position of the offending character; evaluation errors name
what was missing or mistyped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address, ip_address

import pytest

from shared.policy_expr import (
    ATTRIBUTES,
    DictBag,
    EvaluationError,
    ExpressionError,
    MissingAttributeError,
    ValueType,
    compile_expression,
    compile_match,
)
from shared.policy_expr.parser import MAX_DEPTH, MAX_NESTING


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("", 1, "empty expression"),
        ("   ", 4, "empty expression"),
        ('request.path == "a', 17, "unterminated string"),
        ("request.path == 'a", 17, "unterminated string"),
        ('request.path == "a\\q"', 19, "unknown escape"),
        ("(request.size > 1", 18, "expected ')' to close '(' at position 1"),
        ("request.size > 1)", 17, "unexpected ')'"),
        ('request.headers["x"', 20, "expected ']' to close '['"),
        ("request.size >", 15, "unexpected end of expression"),
        ("request.size = 1", 14, "did you mean '=='"),
        ("request.size & 1", 14, "did you mean '&&'"),
        ("request.size # 1", 14, "unexpected character '#'"),
        ("request.size > 1 1", 18, "unexpected '1'"),
        ("request.path.", 14, "expected a method name"),
        ("request.path.(", 14, "expected a method name"),
        ("(request.path).startsWith", 26, "expected '(' to call method 'startsWith'"),
        ("f(,)", 3, "unexpected ','"),
        ("99999999999999999999", 1, "overflows INT64"),
        ("1e999", 1, "overflows DOUBLE"),
        ("foo.bar == 1", 1, "unknown attribute 'foo.bar'"),
        ('request.heders["x"] == "a"', 1, "did you mean 'request.headers'?"),
        ('request.size == "x"', 14, "cannot compare INT64 with STRING"),
        ('source.ip == "10.0.0.1"', 11, 'write the address as ip("10.0.0.1")'),
        ('request.path < "b"', 14, "'<' orders numbers, durations or timestamps, not STRING"),
        ("request.path && true", 1, "'&&' needs BOOL operands, not STRING"),
        ("true || response.code", 9, "'||' needs BOOL operands, not INT64"),
        ("!request.path", 2, "'!' needs a BOOL operand, not STRING"),
        ("-request.path", 2, "'-' needs a number, not STRING"),
        ('request.size | "none"', 14, "both sides of '|' must have one type"),
        ("connection.mtls + true", 17, "'+' adds numbers or durations and joins strings"),
        ('request.path["a"]', 13, "cannot index a STRING"),
        ("request.headers[1]", 17, "a map key must be STRING, not INT64"),
        ("request.size - 1", 14, "unexpected '-'"),
    ],
)
def test_compile_errors_point_at_the_character(text: str, position: int, words: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(text)
    error = caught.value
    assert (error.position, words in error.message) == (position, True), str(error)
    assert str(error) == f"position {position}: {error.message}"


def test_nesting_and_depth_limits_are_errors_not_crashes() -> None:
    deep = "(" * (MAX_NESTING + 5) + "true" + ")" * (MAX_NESTING + 5)
    with pytest.raises(ExpressionError, match="nested too deeply"):
        compile_expression(deep)
    with pytest.raises(ExpressionError, match="nested too deeply"):
        compile_expression("!" * (MAX_NESTING + 5) + "true")
    with pytest.raises(ExpressionError, match="too deep"):
        compile_expression(" || ".join(["true"] * (MAX_DEPTH + 5)))
    allowed = " || ".join([f'source.namespace == "ns{n}"' for n in range(MAX_DEPTH // 2)])
    assert compile_expression(allowed).evaluate(DictBag({"source.namespace": "ns7"})) is True


def test_expected_type_is_enforced_at_the_start_of_the_text() -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression("  request.path", expected=ValueType.BOOL)
    assert caught.value.position == 3
    assert "STRING, but BOOL is required" in caught.value.message
    widened = compile_expression("request.size", expected=ValueType.DOUBLE)
    assert widened.evaluate(DictBag({"request.size": 3})) == 3


def test_compile_match_treats_blank_as_true_and_requires_bool() -> None:
    for blank in ("", "  \n"):
        always = compile_match(blank)
        assert always.evaluate(DictBag()) is True
        assert always.referenced == frozenset()
    assert compile_match('request.method == "GET"').result_type is ValueType.BOOL
    with pytest.raises(ExpressionError, match="BOOL is required"):
        compile_match("request.size")


def test_a_custom_vocabulary_replaces_istios() -> None:
    vocabulary = {"tenant.tier": ValueType.STRING}
    expression = compile_expression('tenant.tier == "gold"', attributes=vocabulary)
    assert expression.evaluate(DictBag({"tenant.tier": "gold"})) is True
    with pytest.raises(ExpressionError) as caught:
        compile_expression('request.path == "/"', attributes=vocabulary)
    assert caught.value.message.startswith("unknown attribute 'request.path'")


@pytest.mark.parametrize(
    "name",
    [
        "source.principal",
        "source.namespace",
        "source.ip",
        "source.workload.name",
        "source.labels",
        "destination.service.host",
        "destination.service.name",
        "destination.workload.name",
        "destination.namespace",
        "destination.port",
        "request.path",
        "request.method",
        "request.headers",
        "request.host",
        "request.scheme",
        "request.size",
        "request.time",
        "request.useragent",
        "response.code",
        "response.duration",
        "response.size",
        "response.headers",
        "connection.mtls",
        "context.reporter.kind",
        "context.protocol",
    ],
)
def test_the_vocabulary_has_istios_attributes(name: str) -> None:
    assert name in ATTRIBUTES


def test_vocabulary_types_follow_istio() -> None:
    assert ATTRIBUTES["source.ip"] is ValueType.IP_ADDRESS
    assert ATTRIBUTES["request.headers"] is ValueType.STRING_MAP
    assert ATTRIBUTES["response.code"] is ValueType.INT64
    assert ATTRIBUTES["response.duration"] is ValueType.DURATION
    assert ATTRIBUTES["request.time"] is ValueType.TIMESTAMP
    assert ATTRIBUTES["connection.mtls"] is ValueType.BOOL


def test_missing_attribute_without_default_is_an_evaluation_error() -> None:
    expression = compile_expression('source.principal == "cluster.local/ns/a/sa/b"')
    with pytest.raises(MissingAttributeError) as caught:
        expression.evaluate(DictBag())
    assert caught.value.name == "source.principal"
    assert "source.principal" in str(caught.value)


def test_missing_map_key_without_default_names_the_key() -> None:
    expression = compile_expression('request.headers["x-user"] == "a"')
    with pytest.raises(MissingAttributeError) as caught:
        expression.evaluate(DictBag({"request.headers": {"x-other": "b"}}))
    assert (caught.value.name, caught.value.key) == ("request.headers", "x-user")
    with pytest.raises(MissingAttributeError):
        expression.evaluate(DictBag())


def test_missing_attribute_with_default_takes_the_default() -> None:
    expression = compile_expression('(request.headers["x-user"] | "guest") == "guest"')
    assert expression.evaluate(DictBag()) is True
    assert expression.evaluate(DictBag({"request.headers": {}})) is True
    assert expression.evaluate(DictBag({"request.headers": {"x-user": "root"}})) is False


def test_a_default_does_not_hide_other_errors() -> None:
    expression = compile_expression('ip(request.headers["x-ip"]) | ip("0.0.0.0")')
    assert expression.evaluate(DictBag({"request.headers": {}})) == IPv4Address("0.0.0.0")
    with pytest.raises(EvaluationError, match="not an IP address"):
        expression.evaluate(DictBag({"request.headers": {"x-ip": "garbage"}}))


@pytest.mark.parametrize(
    ("text", "bag", "words"),
    [
        ("request.size > 1", {"request.size": "12"}, "request.size is str, not INT64"),
        ("request.size > 1", {"request.size": True}, "request.size is bool, not INT64"),
        ("connection.mtls", {"connection.mtls": "true"}, "connection.mtls is str, not BOOL"),
        ('request.path == "/"', {"request.path": b"/"}, "request.path is bytes, not STRING"),
        ('request.headers["a"] == "b"', {"request.headers": "a=b"}, "is str, not STRING_MAP"),
        ('request.headers["a"] == "b"', {"request.headers": {"a": 1}}, "is int, not STRING"),
        ('source.ip == ip("1.1.1.1")', {"source.ip": 16843009}, "is int, not IP_ADDRESS"),
        ('source.ip == ip("1.1.1.1")', {"source.ip": "one"}, "not an IP address"),
        ('response.duration > "1s"', {"response.duration": 5}, "is int, not DURATION"),
    ],
)
def test_bag_values_of_the_wrong_type_are_evaluation_errors(
    text: str, bag: dict[str, object], words: str
) -> None:
    expression = compile_expression(text)
    with pytest.raises(EvaluationError, match=words):
        expression.evaluate(DictBag(bag))  # type: ignore[arg-type]


def test_bag_values_in_other_spellings_are_normalised() -> None:
    ip_check = compile_expression('source.ip == ip("10.0.0.1")')
    for spelling in ("10.0.0.1", "::ffff:10.0.0.1", ip_address("::ffff:10.0.0.1")):
        assert ip_check.evaluate(DictBag({"source.ip": spelling})) is True
    naive = DictBag({"request.time": datetime(2020, 1, 1, 12, 0)})
    assert compile_expression('request.time == timestamp("2020-01-01T12:00:00Z")').evaluate(naive)
    aware = DictBag({"request.time": datetime(2020, 1, 1, 13, 0, tzinfo=UTC)})
    assert compile_expression('request.time > timestamp("2020-01-01T12:00:00Z")').evaluate(aware)
    assert compile_expression("request.size | 0.5").evaluate(DictBag({"request.size": 2})) == 2.0
    duration = DictBag({"response.duration": timedelta(seconds=2)})
    assert compile_expression('response.duration >= "2s"').evaluate(duration) is True
