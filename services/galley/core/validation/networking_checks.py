"""Checks shared by the networking.istio.io validators (Istio's validation.go helpers).

Each ``check_*`` records its findings into a :class:`Report` at the field path it is
given and returns whether the value was good; none raises. Pure functions of their
arguments, safe to call from any task.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from datetime import timedelta

from services.galley.core.validation.common import (
    check_dns_label,
    check_hostname,
    check_ip_address,
    check_labels,
    check_namespace,
    check_port,
    check_positive_duration,
    check_regex,
)
from services.galley.core.validation.report import Report
from shared.config.networking_types import Destination, Percent, StringMatch, WorkloadSelector

MESH_GATEWAY = "mesh"
UNIX_PREFIX = "unix://"
KNOWN_PROTOCOLS = frozenset(
    {"HTTP", "HTTPS", "HTTP2", "GRPC", "GRPC-WEB", "TCP", "TLS", "MONGO", "REDIS", "MYSQL"}
)
GATEWAY_PROTOCOLS = frozenset({"HTTP", "HTTPS", "GRPC", "HTTP2", "MONGO", "TCP", "TLS"})
HTTP_PROTOCOLS = frozenset({"HTTP", "HTTP2", "GRPC", "GRPC-WEB"})
TLS_PROTOCOLS = frozenset({"HTTPS", "TLS"})
_MIN_DURATION = timedelta(milliseconds=1)
_HEADER_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def is_ip(value: str) -> bool:
    """True when ``value`` is a single IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def check_duration(report: Report, path: str, value: timedelta) -> bool:
    """A timeout or interval: Envoy needs at least 1 ms."""
    return check_positive_duration(report, path, value, minimum=_MIN_DURATION)


def check_string_match(report: Report, path: str, match: StringMatch) -> bool:
    """Exactly one of ``exact``, ``prefix`` or ``regex``; a regex must compile."""
    kinds = match.kinds_set()
    if len(kinds) != 1:
        found = f" (found {' and '.join(kinds)})" if kinds else ""
        report.error(path, f"string match must set exactly one of exact, prefix or regex{found}")
        return False
    if match.regex is not None:
        return check_regex(report, f"{path}.regex", match.regex)
    return True


def check_header_name(report: Report, path: str, name: str) -> bool:
    """An HTTP header name: letters, digits, ``-`` and ``_``."""
    if name and set(name) <= _HEADER_NAME_CHARS:
        return True
    report.error(path, f"header name {name!r} is not a valid header name")
    return False


def check_percent(report: Report, path: str, percent: Percent) -> bool:
    """A fractional percentage in 0.0-100.0."""
    if 0.0 <= percent.value <= 100.0:
        return True
    report.error(f"{path}.value", f"percentage {percent.value} is not in range 0..100")
    return False


def check_int_percent(report: Report, path: str, value: int) -> bool:
    """An integer percentage in 0-100 (the deprecated ``percent`` fields)."""
    if 0 <= value <= 100:
        return True
    report.error(path, f"percentage {value} is not in range 0..100")
    return False


def check_non_negative(report: Report, path: str, value: int | None) -> bool:
    """A count or limit that must not be negative (unset is fine)."""
    if value is None or value >= 0:
        return True
    report.error(path, f"value {value} must not be negative")
    return False


def check_destination(report: Report, path: str, destination: Destination) -> bool:
    """A route destination: a host (not ``*``), an optional subset name and port number."""
    good = True
    if destination.host == "*":
        report.error(f"{path}.host", "destination host must not be '*'")
        good = False
    else:
        good = check_hostname(report, f"{path}.host", destination.host)
    if destination.subset is not None:
        good &= check_dns_label(report, f"{path}.subset", destination.subset, what="subset name")
    if destination.port is not None:
        if destination.port.number is None:
            report.error(f"{path}.port.number", "port number is required")
            good = False
        else:
            good &= check_port(report, f"{path}.port.number", destination.port.number)
    return good


def check_weights(report: Report, path: str, weights: Sequence[int | None]) -> bool:
    """Weights are non-negative and add up to 100 when several or any are given.

    As in Istio, a weight of 0 counts as unset: one destination without a weight takes
    all traffic.
    """
    good = True
    for index, weight in enumerate(weights):
        if weight is not None and weight < 0:
            report.error(f"{path}[{index}].weight", f"weight {weight} must not be negative")
            good = False
    total = sum(weight or 0 for weight in weights)
    if (len(weights) > 1 or total != 0) and total != 100:
        report.error(path, f"total destination weight {total} != 100")
        good = False
    return good


def check_gateway_names(report: Report, path: str, names: Sequence[str]) -> bool:
    """``mesh``, ``namespace/name`` or a (short or fully qualified) gateway name."""
    good = True
    for index, name in enumerate(names):
        item = f"{path}[{index}]"
        if name == MESH_GATEWAY:
            continue
        namespace, slash, gateway = name.partition("/")
        if slash:
            good &= check_namespace(report, item, namespace)
            good &= check_dns_label(report, item, gateway, what="gateway name")
        else:
            good &= check_hostname(report, item, name, allow_wildcard=False)
    return good


def check_namespaced_host(
    report: Report, path: str, value: str, *, require_namespace: bool
) -> bool:
    """``namespace/host`` with namespace ``*``, ``.``, ``~`` or a name; host may be ``*``.

    Without ``require_namespace`` a bare host means ``*/host`` (Gateway servers).
    """
    namespace, slash, host = value.partition("/")
    if not slash:
        if require_namespace:
            report.error(path, f"host {value!r} must be of the form namespace/dnsName")
            return False
        namespace, host = "*", value
    if namespace not in ("*", ".", "~") and not check_namespace(report, path, namespace):
        return False
    if host == "*":
        return True
    return check_hostname(report, path, host)


def check_export_to(
    report: Report, path: str, values: Sequence[str], *, allow_private: bool = False
) -> bool:
    """``.``, ``*`` or namespace names, no duplicates, ``*`` alone; ``~`` if allowed."""
    good = True
    own_namespace = report.resource.metadata.namespace
    seen: set[str] = set()
    for index, value in enumerate(values):
        item = f"{path}[{index}]"
        key = own_namespace if value == "." else value
        if value == "~" and not allow_private:
            report.error(item, "exportTo '~' is only allowed for ServiceEntry")
            good = False
        elif value not in (".", "*", "~") and not check_namespace(report, item, value):
            good = False
        if key in seen:
            report.error(item, f"duplicate exportTo entry {value!r}")
            good = False
        seen.add(key)
    for special, meaning in (("*", "public ('*')"), ("~", "private ('~')")):
        if special in values and len(values) > 1:
            report.error(path, f"exportTo cannot combine {meaning} with other values")
            good = False
    return good


def check_protocol(
    report: Report, path: str, protocol: str | None, allowed: frozenset[str]
) -> bool:
    """A port protocol from ``allowed`` (case-insensitive, as Istio parses it)."""
    if protocol is not None and protocol.upper() in allowed:
        return True
    if protocol is None:
        report.error(path, "protocol is required")
    else:
        choices = "|".join(sorted(allowed))
        report.error(path, f"unsupported protocol {protocol!r}; supported: {choices}")
    return False


def check_workload_selector(report: Report, path: str, selector: WorkloadSelector) -> bool:
    """Valid label selector; an empty one selects everything (a warning)."""
    if not selector.labels:
        report.warning(path, "workload selector without labels applies to every workload")
        return True
    return check_labels(report, f"{path}.labels", selector.labels)


def check_unix_address(report: Report, path: str, address: str) -> bool:
    """``unix://`` followed by an absolute socket path or an abstract ``@name``."""
    socket = address.removeprefix(UNIX_PREFIX)
    if socket.startswith("@") and len(socket) > 1:
        return True
    if socket.startswith("/") and not socket.endswith("/"):
        return True
    report.error(path, f"{address!r} is not a unix socket address (unix:///absolute/path)")
    return False


def check_bind(report: Report, path: str, bind: str | None) -> bool:
    """A listener bind address: an IP or a ``unix://`` socket."""
    if bind is None:
        return True
    if bind.startswith(UNIX_PREFIX):
        return check_unix_address(report, path, bind)
    return check_ip_address(report, path, bind)
