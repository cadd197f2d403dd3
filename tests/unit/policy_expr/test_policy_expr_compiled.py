"""Compiled expressions: the attributes they reference, compile-once evaluation, and
robustness of the compiler against arbitrary text."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from shared.policy_expr import (
    ATTRIBUTES,
    DictBag,
    EvaluationError,
    ExpressionError,
    ValueType,
    compile_expression,
    lexer,
)
from shared.policy_expr.lexer import Token
from shared.policy_expr.types import Value


@pytest.mark.parametrize(
    ("text", "referenced", "keys"),
    [
        ('request.method == "GET"', {"request.method"}, {}),
        (
            'request.headers["x-user"] | "" == "a" && source.ip == ip("10.0.0.1")',
            {"request.headers", "source.ip"},
            {"request.headers": {"x-user"}},
        ),
        (
            'request.headers["a"] == request.headers["b"]',
            {"request.headers"},
            {"request.headers": {"a", "b"}},
        ),
        (
            'request.headers[source.labels["app"]] | "x"',
            {"request.headers", "source.labels"},
            {"request.headers": None, "source.labels": {"app"}},
        ),
        (
            'size(request.headers) > 3 || request.headers["a"] == "b"',
            {"request.headers"},
            {"request.headers": None},
        ),
        (
            'conditional(connection.mtls, source.principal, "none") | source.namespace',
            {"connection.mtls", "source.principal", "source.namespace"},
            {},
        ),
        ('"^/a".matches(request.path) || request.path.startsWith("/b")', {"request.path"}, {}),
        ('ip("1.2.3.4") == ip("1.2.3.4") && true', set(), {}),
    ],
)
def test_referenced_lists_every_attribute_read(
    text: str, referenced: set[str], keys: dict[str, set[str] | None]
) -> None:
    expression = compile_expression(text)
    assert expression.referenced == frozenset(referenced)
    assert dict(expression.referenced_keys) == {
        name: None if value is None else frozenset(value) for name, value in keys.items()
    }


def test_referenced_covers_both_sides_even_when_one_short_circuits() -> None:
    expression = compile_expression('connection.mtls || source.principal == "a"')
    assert expression.evaluate(DictBag({"connection.mtls": True})) is True
    assert expression.referenced == {"connection.mtls", "source.principal"}


def test_a_compiled_expression_never_parses_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_tokenize = lexer.tokenize

    def counting_tokenize(text: str) -> list[Token]:
        calls.append(text)
        return real_tokenize(text)

    monkeypatch.setattr(lexer, "tokenize", counting_tokenize)
    text = 'request.headers["x-user"] | "guest" == "admin" && source.ip == ip("10.0.0.1")'
    expression = compile_expression(text)
    assert calls == [text]
    bags = [
        DictBag({"request.headers": {"x-user": "admin"}, "source.ip": "10.0.0.1"}),
        DictBag({"request.headers": {}, "source.ip": "10.0.0.1"}),
    ]
    results = [expression.evaluate(bags[n % 2]) for n in range(10_000)]
    assert results.count(True) == 5_000
    assert results.count(False) == 5_000
    assert calls == [text]


_FRAGMENTS = st.sampled_from(
    [
        "request.path",
        "request.headers",
        "source.ip",
        "response.code",
        "connection.mtls",
        '"x"',
        "'y'",
        "`z`",
        "1",
        "2.5",
        "true",
        "==",
        "!=",
        "<",
        ">=",
        "&&",
        "||",
        "!",
        "|",
        "+",
        "-",
        "(",
        ")",
        "[",
        "]",
        ",",
        ".",
        "startsWith",
        "match",
        "ip",
        "conditional",
        "size",
        '"10.0.0.1"',
        '"x"',
        '"^/"',
        "matches",
        "timestamp",
        "emptyStringMap()",
        '"5ms"',
        "response.duration",
        "request.time",
        " ",
        "\\",
        '"',
    ]
)


_SAMPLES: dict[ValueType, Value] = {
    ValueType.STRING: "/a",
    ValueType.INT64: 7,
    ValueType.DOUBLE: 0.5,
    ValueType.BOOL: True,
    ValueType.TIMESTAMP: datetime(2020, 1, 1, tzinfo=UTC),
    ValueType.DURATION: timedelta(milliseconds=5),
    ValueType.IP_ADDRESS: ip_address("10.0.0.1"),
    ValueType.STRING_MAP: {"x": "10.0.0.1", "y": "("},
}
_FULL = DictBag({name: _SAMPLES[kind] for name, kind in ATTRIBUTES.items()})


def _assert_compiles_or_points_inside(text: str) -> None:
    """A compile error points inside the text (or just past its end); what compiles
    evaluates to a value or an EvaluationError against an empty and a full bag."""
    try:
        expression = compile_expression(text)
    except ExpressionError as exc:
        assert 1 <= exc.position <= len(text) + 1, (text, exc.position)
        assert exc.message
        return
    for bag in (DictBag(), _FULL):
        with contextlib.suppress(EvaluationError):
            expression.evaluate(bag)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=80))
@example("")
@example("((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((")
@example("!" * 300)
@example('"\\')
@example("1e999999")
@example('timestamp("0001-01-01T00:00:00+01:00")')
@example('response.duration > "99999999999999999h"')
@example('"(?P<x".matches(request.path)')
def test_arbitrary_text_compiles_or_fails_with_a_position(text: str) -> None:
    _assert_compiles_or_points_inside(text)


@settings(max_examples=400, deadline=None)
@given(st.lists(_FRAGMENTS, max_size=25).map("".join))
def test_token_soup_compiles_or_fails_with_a_position(text: str) -> None:
    _assert_compiles_or_points_inside(text)
