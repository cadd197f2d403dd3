"""The attribute bag an expression is evaluated against.

:class:`AttributeBag` is the narrow port an evaluator consumes: ``get(name)`` returns the
attribute's value or ``None`` when absent. Values follow :mod:`shared.policy_expr.types`;
map attributes (``request.headers``) return ``Mapping[str, str]``. :class:`DictBag` is the
plain implementation over a mapping. :func:`attribute_reader` builds the closure a
compiled expression uses to read one attribute: it checks the value's type and
normalises other accepted spellings (an IP as ``str``, a naive ``datetime`` as UTC, an
``int`` for a DOUBLE), raising :class:`EvaluationError` for anything else. A bag is
read-only to the evaluator: it never mutates it and keeps no reference after
``evaluate`` returns. A bag shared between tasks must not be mutated while expressions
evaluate against it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Protocol

from shared.policy_expr.errors import EvaluationError, MissingAttributeError
from shared.policy_expr.functions import normalize_ip, to_ip
from shared.policy_expr.types import Value, ValueType


class AttributeBag(Protocol):
    """Read access to a request's attributes."""

    def get(self, name: str, /) -> Value | None:
        """The attribute's value, or ``None`` when the request does not carry it."""
        ...


class DictBag(Mapping[str, Value]):
    """An immutable bag over a copy of ``values`` (attribute name → value)."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Value] | None = None) -> None:
        self._values: dict[str, Value] = dict(values or {})

    def __getitem__(self, name: str) -> Value:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"DictBag({self._values!r})"


def attribute_reader(name: str, kind: ValueType) -> Callable[[AttributeBag], Value]:
    """Reads attribute ``name`` from a bag, checking (and normalising) its type."""
    exact = _EXACT.get(kind)
    accept = _ACCEPT[kind]

    def read(bag: AttributeBag) -> Value:
        value = bag.get(name)
        if value is None:
            raise MissingAttributeError(name)
        if type(value) is exact:
            return value
        converted = accept(value)
        if converted is None:
            raise EvaluationError(f"attribute {name} is {type(value).__name__}, not {kind}")
        return converted

    return read


def _accept_string(value: object) -> Value | None:
    return value if isinstance(value, str) else None


def _accept_int(value: object) -> Value | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _accept_double(value: object) -> Value | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _accept_bool(value: object) -> Value | None:
    return value if isinstance(value, bool) else None


def _accept_duration(value: object) -> Value | None:
    return value if isinstance(value, timedelta) else None


def _accept_timestamp(value: object) -> Value | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _accept_ip(value: object) -> Value | None:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return normalize_ip(value)
    if isinstance(value, str):
        return to_ip(value)
    return None


def _accept_map(value: object) -> Value | None:
    return value if isinstance(value, Mapping) else None


_EXACT: Mapping[ValueType, type] = {
    ValueType.STRING: str,
    ValueType.INT64: int,
    ValueType.DOUBLE: float,
    ValueType.BOOL: bool,
    ValueType.DURATION: timedelta,
    ValueType.IP_ADDRESS: ipaddress.IPv4Address,
    ValueType.STRING_MAP: dict,
    ValueType.DNS_NAME: str,
    ValueType.EMAIL_ADDRESS: str,
    ValueType.URI: str,
}
"""The Python type a bag normally hands out per ValueType (read without conversion)."""

_ACCEPT: Mapping[ValueType, Callable[[object], Value | None]] = {
    ValueType.STRING: _accept_string,
    ValueType.DNS_NAME: _accept_string,
    ValueType.EMAIL_ADDRESS: _accept_string,
    ValueType.URI: _accept_string,
    ValueType.INT64: _accept_int,
    ValueType.DOUBLE: _accept_double,
    ValueType.BOOL: _accept_bool,
    ValueType.DURATION: _accept_duration,
    ValueType.TIMESTAMP: _accept_timestamp,
    ValueType.IP_ADDRESS: _accept_ip,
    ValueType.STRING_MAP: _accept_map,
}
"""Per ValueType: the value converted to its canonical form, or None when it does not fit."""
