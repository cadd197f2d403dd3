"""Field checks shared by the per-kind validators (Istio's validation helpers).

Each ``check_*`` records into a :class:`Report` and returns whether the value was good.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from datetime import timedelta

from services.galley.core.validation.report import Report

_DNS_LABEL = re.compile(r"^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def check_port(report: Report, path: str, port: int) -> bool:
    """A port number must be 1-65535."""
    if 1 <= port <= 65535:
        return True
    report.error(path, f"port number {port} must be in the range 1..65535")
    return False


def check_hostname(report: Report, path: str, host: str, *, allow_wildcard: bool = True) -> bool:
    """An FQDN or short name; ``*`` or ``*.suffix`` when wildcards are allowed."""
    if not host:
        report.error(path, "host must not be empty")
        return False
    name = host
    if allow_wildcard and host == "*":
        return True
    if host.startswith("*."):
        if not allow_wildcard:
            report.error(path, f"wildcard host {host!r} is not allowed here")
            return False
        name = host[2:]
    if len(name) > 255:
        report.error(path, f"host {host!r} is longer than 255 characters")
        return False
    labels = name.rstrip(".").split(".")
    for label in labels:
        if len(label) > 63 or not _DNS_LABEL.match(label):
            report.error(
                path,
                f"host {host!r} is not a valid FQDN, short name or wildcard: "
                f"label {label!r} is invalid",
            )
            return False
    return True


def check_regex(report: Report, path: str, pattern: str) -> bool:
    """A regular expression must compile (Envoy uses RE2; Python's re is the check here)."""
    try:
        re.compile(pattern)
    except re.error as exc:
        report.error(path, f"regex {pattern!r} does not compile: {exc}")
        return False
    return True


def check_positive_duration(
    report: Report, path: str, value: timedelta, *, minimum: timedelta | None = None
) -> bool:
    """A duration must be positive, and at least ``minimum`` when given."""
    floor = minimum if minimum is not None else timedelta(0)
    if value <= timedelta(0) or value < floor:
        bound = f"at least {floor.total_seconds()}s" if minimum is not None else "positive"
        report.error(path, f"duration {value.total_seconds()}s must be {bound}")
        return False
    return True


def check_labels(report: Report, path: str, labels: Mapping[str, str]) -> bool:
    """A label selector: Kubernetes label names (optional DNS prefix) and values."""
    good = True
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
            report.error(f"{path}.{key}", f"label key prefix {prefix!r} is not a DNS subdomain")
            good = False
        if len(name) > 63 or not _LABEL_NAME.match(name):
            report.error(f"{path}.{key}", f"label key {key!r} is not a valid label name")
            good = False
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            report.error(f"{path}.{key}", f"label value {value!r} is not a valid label value")
            good = False
    return good


_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DIGITS = re.compile(r"^[0-9]+$")


def check_ip_or_cidr(report: Report, path: str, value: str) -> bool:
    """An IP address (``10.1.2.3``) or a CIDR range (``10.1.0.0/16``), v4 or v6."""
    try:
        if "/" in value:
            ipaddress.ip_network(value, strict=False)
        else:
            ipaddress.ip_address(value)
    except ValueError:
        report.error(path, f"{value!r} is not a valid IP address or CIDR range")
        return False
    return True


def check_namespace(report: Report, path: str, name: str) -> bool:
    """A Kubernetes namespace name: a lower-case DNS-1123 label of at most 63 characters."""
    if len(name) <= 63 and _NAMESPACE.match(name):
        return True
    report.error(
        path, f"namespace {name!r} is not a DNS-1123 label (lower-case letters, digits, '-')"
    )
    return False


def check_host_port(report: Report, path: str, address: str) -> bool:
    """``host:port``: a hostname or IP (IPv6 in brackets) and a port 1-65535."""
    host, separator, port = address.rpartition(":")
    if not separator or not host or not _DIGITS.match(port):
        report.error(path, f"address {address!r} must have the form host:port")
        return False
    if not check_port(report, path, int(port)):
        return False
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            report.error(path, f"{host!r} in address {address!r} is not an IPv6 address")
            return False
        return True
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return check_hostname(report, path, host, allow_wildcard=False)
    return True


def check_dns_label(report: Report, path: str, value: str, *, what: str) -> bool:
    """A lower-case DNS-1123 label (subset, port or gateway names); ``what`` names it."""
    if len(value) <= 63 and _NAMESPACE.match(value):
        return True
    report.error(
        path, f"{what} {value!r} is not a DNS-1123 label (lower-case letters, digits, '-')"
    )
    return False


def check_ip_address(report: Report, path: str, value: str) -> bool:
    """A single IPv4 or IPv6 address (no CIDR range)."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        report.error(path, f"{value!r} is not a valid IP address")
        return False
    return True
