"""What every Envoy-message bag shares: lazy reads, typed overrides, Istio's name forms.

:class:`LazyBag` computes an attribute the first time it is read, from a table of
reader functions, and remembers it (a Check usually reads a handful of attributes; the
check cache reads fewer). ``overrides`` — attributes Pilot passes as strings (ext_authz
``context_extensions``) — are converted to each attribute's type (:func:`typed_value`)
and win over what the message says; a value that does not convert is kept as the raw
string, so a rule reading it fails with a runtime type mismatch (counted; fail policy).

Helpers read Istio's conventions: ``spiffe://td/ns/<ns>/sa/<sa>`` principals, Envoy
cluster names ``inbound|port|subset|host``, node clusters ``<workload>.<namespace>``
and service hosts ``<name>.<namespace>.svc.<domain>``.

A bag belongs to one request on one task; it keeps a reference to its message.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Generic, TypeVar

from shared.config.base import parse_duration
from shared.policy_expr import ATTRIBUTES, Value, ValueType

S = TypeVar("S")
_UNREAD = object()
Reader = Callable[["LazyBag[S]"], Value | None]


class LazyBag(Generic[S]):
    """Attributes of one message, computed on first read (see the module docstring)."""

    __slots__ = ("_readers", "_values", "source")

    def __init__(
        self,
        source: S,
        readers: Mapping[str, Reader[S]],
        overrides: Mapping[str, Value] | None = None,
    ) -> None:
        self.source = source
        self._readers = readers
        self._values: dict[str, Value | None] = dict(overrides) if overrides else {}

    def get(self, name: str, /) -> Value | None:
        """The attribute's value, or None when the message does not carry it."""
        value = self._values.get(name, _UNREAD)
        if value is not _UNREAD:
            return value  # type: ignore[return-value]
        reader = self._readers.get(name)
        value = reader(self) if reader is not None else None
        self._values[name] = value
        return value


def typed_value(name: str, raw: str) -> Value:
    """``raw`` converted to the type of attribute ``name`` (the raw string if it cannot be)."""
    kind = ATTRIBUTES.get(name)
    try:
        if kind is ValueType.INT64:
            return int(raw)
        if kind is ValueType.DOUBLE:
            return float(raw)
        if kind is ValueType.BOOL and raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        if kind is ValueType.IP_ADDRESS:
            return ipaddress.ip_address(raw)
        if kind is ValueType.DURATION:
            return parse_duration(raw)
        if kind is ValueType.TIMESTAMP:
            moment = datetime.fromisoformat(raw)
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        if kind is ValueType.STRING_MAP:
            decoded = json.loads(raw)
            if isinstance(decoded, dict):
                return {str(k): str(v) for k, v in decoded.items()}
    except ValueError:
        return raw
    return raw


def typed_overrides(raw: Mapping[str, str]) -> dict[str, Value]:
    """Known attributes among ``raw``, typed (unknown keys are ignored)."""
    return {name: typed_value(name, value) for name, value in raw.items() if name in ATTRIBUTES}


def ip_of(address: str) -> Value | None:
    """An address string as an IP value (None when empty or not an address)."""
    if not address:
        return None
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None


def principal_of(uri: str) -> str | None:
    """A peer identity without its ``spiffe://`` prefix (None when empty)."""
    return uri.removeprefix("spiffe://") or None


def namespace_of_principal(principal: object) -> str | None:
    """``<ns>`` of ``td/ns/<ns>/sa/<sa>``."""
    if not isinstance(principal, str):
        return None
    parts = principal.split("/")
    for index in range(len(parts) - 1):
        if parts[index] == "ns" and parts[index + 1]:
            return parts[index + 1]
    return None


def split_node_cluster(cluster: object) -> tuple[str, str] | None:
    """``(workload, namespace)`` of a node cluster ``<workload>.<namespace>``."""
    if not isinstance(cluster, str) or "." not in cluster:
        return None
    workload, _, namespace = cluster.rpartition(".")
    return (workload, namespace) if workload and namespace else None


def service_parts(host: object) -> tuple[str, str] | None:
    """``(name, namespace)`` of ``<name>.<namespace>.svc[.<domain>]``."""
    if not isinstance(host, str):
        return None
    parts = host.split(".")
    if len(parts) >= 3 and parts[2] == "svc":
        return parts[0], parts[1]
    return None


def host_without_port(authority: str) -> str | None:
    """``host`` of ``host[:port]`` (IPv6 literals keep their brackets)."""
    if not authority:
        return None
    if authority.startswith("["):
        return authority.split("]", 1)[0] + "]"
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def parse_cluster(name: str) -> tuple[str, int | None, str] | None:
    """``(direction, port, host)`` of ``inbound|9080|http|host`` or ``outbound|9080||host``."""
    parts = name.split("|")
    if len(parts) != 4 or parts[0] not in ("inbound", "outbound"):
        return None
    port = int(parts[1]) if parts[1].isdigit() else None
    return parts[0], port, parts[3]


def protocol_of(headers: Mapping[str, str]) -> str:
    """``grpc`` for gRPC content, else ``http`` (Istio's ``context.protocol``)."""
    return "grpc" if headers.get("content-type", "").startswith("application/grpc") else "http"


def parse_query(path: str) -> dict[str, str]:
    """The query parameters of a request path (first value of each name)."""
    _, _, query = path.partition("?")
    params: dict[str, str] = {}
    for pair in query.split("&"):
        if pair:
            key, _, value = pair.partition("=")
            params.setdefault(key, value)
    return params
