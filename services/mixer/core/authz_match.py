"""Value matchers of AuthorizationPolicy fields (security.istio.io/v1beta1).

Each :data:`Getter` reads one request value through the bag (so the check cache sees
what a policy read); each :data:`Pattern` tests one value against one policy string.
Strings use Istio's wildcards: ``*`` alone matches any present value, ``prefix*`` and
``*suffix`` match by prefix and suffix, anything else exactly. Hosts compare
case-insensitively, with or without the ``:port``; paths without the query string;
IP blocks as addresses or CIDRs; ports as numbers. An absent value never matches a
pattern (so a ``notValues`` list matches it). Pure functions; task-safe.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping

from services.mixer.core.errors import ConfigError
from shared.policy_expr import ATTRIBUTES, AttributeBag, ValueType

Getter = Callable[[AttributeBag], object]
"""Reads one value from a request (``None`` when absent)."""
Pattern = Callable[[object], bool]
"""Tests one request value against one policy value."""


def attribute(name: str) -> Getter:
    """Read attribute ``name``."""
    return lambda bag: bag.get(name)


def map_key(name: str, key: str) -> Getter:
    """Read ``key`` of map attribute ``name``."""

    def read(bag: AttributeBag) -> object:
        mapping = bag.get(name)
        return mapping.get(key) if isinstance(mapping, Mapping) else None

    return read


def path_without_query(bag: AttributeBag) -> object:
    """``request.path`` without ``?query`` or ``#fragment``."""
    path = bag.get("request.path")
    if not isinstance(path, str):
        return None
    return path.split("?", 1)[0].split("#", 1)[0]


def principal(name: str) -> Getter:
    """A principal attribute without its ``spiffe://`` prefix."""

    def read(bag: AttributeBag) -> object:
        value = bag.get(name)
        return value.removeprefix("spiffe://") if isinstance(value, str) else None

    return read


def string_pattern(text: str) -> Pattern:
    """Istio's string match (see the module docstring)."""
    if text == "*":
        return lambda value: isinstance(value, str) and value != ""
    if text.endswith("*"):
        prefix = text[:-1]
        return lambda value: isinstance(value, str) and value.startswith(prefix)
    if text.startswith("*"):
        suffix = text[1:]
        return lambda value: isinstance(value, str) and value.endswith(suffix)
    return lambda value: value == text


def host_pattern(text: str) -> Pattern:
    """Case-insensitive host match, with or without the request's port."""
    match = string_pattern(text.lower())

    def test(value: object) -> bool:
        if not isinstance(value, str):
            return False
        host = value.lower()
        return match(host) or match(host.rsplit(":", 1)[0])

    return test


def ip_pattern(text: str, *, subject: str) -> Pattern:
    """Membership of an address in an IP or CIDR block."""
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise ConfigError(subject, f"{text!r} is not an IP address or CIDR block") from exc

    def test(value: object) -> bool:
        if isinstance(value, str):
            try:
                value = ipaddress.ip_address(value)
            except ValueError:
                return False
        if isinstance(value, ipaddress.IPv6Address) and value.ipv4_mapped is not None:
            value = value.ipv4_mapped
        return isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address) and (
            value in network
        )

    return test


def port_pattern(text: str, *, subject: str) -> Pattern:
    """Equality with a port number given as a string."""
    if not text.isdigit():
        raise ConfigError(subject, f"{text!r} is not a port number")
    port = int(text)
    return lambda value: (isinstance(value, int) and value == port) or value == text


ConditionKey = tuple[Getter, Callable[[str], Pattern]]


def condition_key(key: str, *, subject: str) -> ConditionKey:
    """The getter and pattern maker for a ``when`` condition key.

    Raises :class:`ConfigError` for a key splitmesh cannot evaluate.
    """

    def ip(text: str) -> Pattern:
        return ip_pattern(text, subject=subject)

    def port(text: str) -> Pattern:
        return port_pattern(text, subject=subject)

    for prefix, attribute_name in (
        ("request.headers[", "request.headers"),
        ("request.auth.claims[", "request.auth.claims"),
    ):
        if key.startswith(prefix) and key.endswith("]") and len(key) > len(prefix) + 1:
            name = key[len(prefix) : -1]
            if attribute_name == "request.headers":
                name = name.lower()
            return map_key(attribute_name, name), string_pattern
    fixed: dict[str, ConditionKey] = {
        "source.ip": (attribute("source.ip"), ip),
        "remote.ip": (attribute("source.ip"), ip),
        "destination.ip": (attribute("destination.ip"), ip),
        "destination.port": (attribute("destination.port"), port),
        "source.principal": (principal("source.principal"), string_pattern),
        "connection.sni": (attribute("connection.requested_server_name"), string_pattern),
    }
    if key in fixed:
        return fixed[key]
    kind = ATTRIBUTES.get(key)
    if kind in (ValueType.STRING, ValueType.DNS_NAME, ValueType.URI, ValueType.EMAIL_ADDRESS):
        return attribute(key), string_pattern
    raise ConfigError(subject, f"unsupported condition key {key!r}")
