"""The functions and methods an expression may call, with their static signatures.

Each :class:`Function` names the types it accepts per argument (a method's receiver is
its first argument) and the type it returns. Implementations are plain functions of
already-evaluated values; they raise :class:`EvaluationError` for values they cannot
convert (``ip("nope")``), never anything else. With constant arguments the compiler runs
them once at compile time, so such errors surface as compile errors. ``conditional`` and
``size`` are generic and typed by the compiler itself. Immutable, task-safe.

=================  ==============================  ==========================================
name               signature                       meaning (Istio 1.4)
=================  ==============================  ==========================================
ip                 (STRING) → IP_ADDRESS           parse an IPv4 or IPv6 address
timestamp          (STRING) → TIMESTAMP            parse RFC 3339
dnsName            (STRING) → DNS_NAME             validate; compares case-insensitively
email              (STRING) → EMAIL_ADDRESS        validate; domain compares case-insensitively
uri                (STRING) → URI                  validate a non-empty URI
match              (STRING, STRING) → BOOL         glob: ``"*.ns"`` suffix, ``"/a*"`` prefix
s.startsWith(p)    (STRING, STRING) → BOOL         prefix test (also ``startsWith(s, p)``)
s.endsWith(p)      (STRING, STRING) → BOOL         suffix test (also ``endsWith(s, p)``)
re.matches(s)      (STRING, STRING) → BOOL         regular expression search (``re`` first)
toLower            (STRING) → STRING               lower case
emptyStringMap     () → STRING_MAP                 an empty map (a default for ``|``)
conditionalString  (BOOL, STRING, STRING) → STRING ``c ? a : b``
=================  ==============================  ==========================================
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from shared.policy_expr.errors import EvaluationError
from shared.policy_expr.types import IPAddress, Value, ValueType

_S = ValueType.STRING
_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


@dataclass(frozen=True, slots=True)
class Function:
    """A callable's signature and implementation.

    ``params`` lists the types each argument may have; ``method`` and ``function`` say
    whether it may be called as ``receiver.name(...)`` and as ``name(...)``.
    ``constant_checks`` maps an argument index to a validator run at compile time when
    that argument is a constant (a regular expression pattern, say).
    """

    name: str
    params: tuple[ValueType, ...]
    result: ValueType
    impl: Callable[..., Value]
    method: bool = False
    function: bool = True
    constant_checks: Mapping[int, Callable[[Value], object]] = field(
        default_factory=lambda: MappingProxyType({})
    )


def to_ip(text: str) -> IPAddress:
    """``text`` as an address; IPv4-mapped IPv6 becomes IPv4 so both spellings compare equal."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise EvaluationError(f"{text!r} is not an IP address") from None
    return normalize_ip(address)


def normalize_ip(address: IPAddress) -> IPAddress:
    """IPv4-mapped IPv6 (``::ffff:10.0.0.1``) as plain IPv4."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def to_timestamp(text: str) -> datetime:
    """An RFC 3339 timestamp (``2015-01-02T15:04:35Z``)."""
    try:
        parsed = datetime.fromisoformat(text)
        if "T" in text.upper() and parsed.tzinfo is not None:
            return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        pass
    raise EvaluationError(f"{text!r} is not an RFC 3339 timestamp such as 2015-01-02T15:04:35Z")


def parse_duration(text: str) -> timedelta:
    """A Go duration string (``"10ms"``, ``"1h30m"``, ``"-1.5s"``)."""
    body = text[1:] if text[:1] in "+-" else text
    parts = _DURATION_PART.findall(body)
    if body == "0":
        return timedelta(0)
    if not parts or "".join(number + unit for number, unit in parts) != body:
        raise EvaluationError(f"{text!r} is not a duration such as '10ms' or '1h30m'")
    seconds = sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)
    try:
        return timedelta(seconds=-seconds if text.startswith("-") else seconds)
    except OverflowError:
        raise EvaluationError(f"duration {text!r} is out of range") from None


def _dns_name(text: str) -> str:
    name = text[:-1] if text.endswith(".") else text
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_DNS_LABEL.match(label) for label in labels):
        raise EvaluationError(f"{text!r} is not a DNS name")
    return name.lower()


def _email(text: str) -> str:
    local, at, domain = text.rpartition("@")
    if not at or not local or any(char.isspace() or char in '<>",' for char in local):
        raise EvaluationError(f"{text!r} is not an e-mail address")
    try:
        return f"{local}@{_dns_name(domain)}"
    except EvaluationError:
        raise EvaluationError(f"{text!r} is not an e-mail address") from None


def _uri(text: str) -> str:
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError:
        parts = None
    if parts is None or not text or any(char.isspace() for char in text):
        raise EvaluationError(f"{text!r} is not a URI")
    return text


def _glob(value: str, pattern: str) -> bool:
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return value == pattern


def compile_regex(pattern: Value) -> re.Pattern[str]:
    """``pattern`` compiled; :class:`EvaluationError` when it is not a regular expression."""
    try:
        return re.compile(str(pattern))
    except (re.error, ValueError, OverflowError, RecursionError) as exc:
        raise EvaluationError(f"{pattern!r} is not a regular expression: {exc}") from None


def _regex_search(pattern: str, value: str) -> bool:
    return compile_regex(pattern).search(value) is not None


def _conditional_string(condition: bool, when_true: str, when_false: str) -> str:
    return when_true if condition else when_false


def _empty_map() -> Mapping[str, str]:
    return MappingProxyType({})


def _startswith(value: str, prefix: str) -> bool:
    return value.startswith(prefix)


def _endswith(value: str, suffix: str) -> bool:
    return value.endswith(suffix)


def _lower(value: str) -> str:
    return value.lower()


def _registry() -> Mapping[str, Function]:
    entries = (
        Function("ip", (_S,), ValueType.IP_ADDRESS, to_ip),
        Function("timestamp", (_S,), ValueType.TIMESTAMP, to_timestamp),
        Function("dnsName", (_S,), ValueType.DNS_NAME, _dns_name),
        Function("email", (_S,), ValueType.EMAIL_ADDRESS, _email),
        Function("uri", (_S,), ValueType.URI, _uri),
        Function("match", (_S, _S), ValueType.BOOL, _glob),
        Function("startsWith", (_S, _S), ValueType.BOOL, _startswith, method=True),
        Function("endsWith", (_S, _S), ValueType.BOOL, _endswith, method=True),
        Function(
            "matches",
            (_S, _S),
            ValueType.BOOL,
            _regex_search,
            method=True,
            function=False,
            constant_checks=MappingProxyType({0: compile_regex}),
        ),
        Function("toLower", (_S,), _S, _lower),
        Function("emptyStringMap", (), ValueType.STRING_MAP, _empty_map),
        Function("conditionalString", (ValueType.BOOL, _S, _S), _S, _conditional_string),
    )
    return MappingProxyType({entry.name: entry for entry in entries})


FUNCTIONS: Mapping[str, Function] = _registry()
"""Function name → definition (``conditional`` and ``size`` are built into the compiler)."""
