"""Validation of AuthorizationPolicy and PeerAuthentication, as Istio's validation.go does.

Each validator reads one typed resource and records every problem into the
:class:`Report` under the field path (``spec.rules[0].to[1].operation.ports[0]``); it
never raises on a resource the parser produced. The root namespace used for the
"mesh-wide policy has no selector" rule is Istio's default (``istio-system``): a mesh
with another ``rootNamespace`` is checked by the cross-resource analyzer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from services.galley.core.validation.common import check_ip_or_cidr, check_labels
from services.galley.core.validation.report import Report
from shared.config import Resource
from shared.config.mesh import DEFAULT_ROOT_NAMESPACE
from shared.config.security import (
    AuthorizationPolicySpec,
    AuthorizationRule,
    Condition,
    Operation,
    PeerAuthenticationSpec,
    Source,
    WorkloadSelector,
)

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
_PORT = re.compile(r"^[0-9]{1,5}$")
_MAP_KEY = re.compile(r"^[^\[\]]+\[[^\[\]]+\]$")
_Check = Callable[[Report, str, str], bool]

# Condition keys: exact names, and ``prefix[name]`` forms.
_PLAIN_KEYS = (
    "source.ip",
    "source.namespace",
    "source.principal",
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "destination.ip",
    "destination.port",
    "connection.sni",
)
_MAP_KEYS = ("request.headers", "request.auth.claims")
_REPLACED_KEYS = {
    "destination.namespace": "is replaced by the policy's metadata.namespace",
    "destination.labels": "is replaced by the workload selector",
    "destination.name": "is deprecated: only supported in v1alpha1 RBAC",
    "destination.user": "is deprecated: only supported in v1alpha1 RBAC",
}
_SUPPORTED_KEYS = ", ".join((*_PLAIN_KEYS, *(f"{key}[...]" for key in _MAP_KEYS)))


def validate_authorization_policy(resource: Resource, report: Report) -> None:
    """Istio's ValidateAuthorizationPolicy, with a field path on every issue."""
    spec = resource.spec
    if not isinstance(spec, AuthorizationPolicySpec):
        return
    _check_selector(report, spec.selector)
    if spec.action == "CUSTOM":
        if spec.provider is None or not spec.provider.name:
            report.error("spec.provider.name", "a CUSTOM policy must name its provider")
    elif spec.provider is not None:
        report.error(
            "spec.provider", f"provider is only allowed with action CUSTOM, not {spec.action}"
        )
    if spec.action in ("DENY", "CUSTOM") and not spec.rules:
        report.error(
            "spec.rules",
            f"a {spec.action} policy without rules never triggers; "
            "add an empty rule {} to match every request",
        )
    for index, rule in enumerate(spec.rules or ()):
        _check_rule(report, f"spec.rules[{index}]", rule)


def validate_peer_authentication(resource: Resource, report: Report) -> None:
    """Istio's ValidatePeerAuthentication, plus the root-namespace selector rule."""
    spec = resource.spec
    if not isinstance(spec, PeerAuthenticationSpec):
        return
    _check_selector(report, spec.selector)
    no_selector = spec.selector is None or spec.selector.is_empty
    if not no_selector and resource.metadata.namespace == DEFAULT_ROOT_NAMESPACE:
        report.error(
            "spec.selector",
            f"a mesh-wide policy (namespace {DEFAULT_ROOT_NAMESPACE}) must not have a selector; "
            "put a workload policy in the workload's namespace",
        )
    ports = spec.port_level_mtls
    if ports is None:
        return
    if not ports:
        report.error("spec.portLevelMtls", "if set, must have at least one port")
    elif no_selector:
        report.error(
            "spec.portLevelMtls",
            "port-level mTLS requires a workload selector (a mesh or namespace policy "
            "cannot set it)",
        )
    for port in ports:
        if not 1 <= port <= 65535:
            report.error(f"spec.portLevelMtls.{port}", f"port {port} must be in the range 1..65535")


def _check_selector(report: Report, selector: WorkloadSelector | None) -> None:
    if selector is not None and selector.match_labels:
        check_labels(report, "spec.selector.matchLabels", selector.match_labels)


def _check_rule(report: Report, path: str, rule: AuthorizationRule) -> None:
    if rule.from_ is not None and not rule.from_:
        report.error(f"{path}.from", "must not be empty (omit it to match every source)")
    for index, entry in enumerate(rule.from_ or ()):
        _check_source(report, f"{path}.from[{index}].source", entry.source)
    if rule.to is not None and not rule.to:
        report.error(f"{path}.to", "must not be empty (omit it to match every operation)")
    for index, target in enumerate(rule.to or ()):
        _check_operation(report, f"{path}.to[{index}].operation", target.operation)
    for index, condition in enumerate(rule.when or ()):
        _check_condition(report, f"{path}.when[{index}]", condition)


def _check_source(report: Report, path: str, source: Source | None) -> None:
    if source is None:
        report.error(path, "required: each `from` entry needs a source")
        return
    _check_entry(report, path, source.model_dump(by_alias=True, exclude_none=True), _SOURCE_CHECKS)


def _check_operation(report: Report, path: str, operation: Operation | None) -> None:
    if operation is None:
        report.error(path, "required: each `to` entry needs an operation")
        return
    fields = operation.model_dump(by_alias=True, exclude_none=True)
    _check_entry(report, path, fields, _OPERATION_CHECKS)


def _check_entry(
    report: Report, path: str, fields: Mapping[str, Sequence[str]], checks: Mapping[str, _Check]
) -> None:
    """A source or operation: at least one list set (Istio rejects an empty one)."""
    if not any(fields.values()):
        report.error(path, "must set at least one field (omit the entry to match everything)")
    _check_values(report, path, fields, checks)


def _check_values(
    report: Report, path: str, fields: Mapping[str, Sequence[str]], checks: Mapping[str, _Check]
) -> None:
    """No empty strings (Istio's CheckEmptyValues), and each value passes its field's check."""
    for name, values in fields.items():
        check = checks.get(name)
        for index, value in enumerate(values):
            item = f"{path}.{name}[{index}]"
            if not value:
                report.error(item, "empty value is not allowed")
            elif check is not None:
                check(report, item, value)


def _check_condition(report: Report, path: str, condition: Condition) -> None:
    key = condition.key
    if not key:
        report.error(f"{path}.key", "must not be empty")
        return
    if not condition.values and not condition.not_values:
        report.error(path, f"at least one of values or notValues must be set for key {key!r}")
        return
    if not _check_key(report, f"{path}.key", key):
        return
    fields = {"values": condition.values or (), "notValues": condition.not_values or ()}
    check = _VALUE_CHECKS.get(key)
    _check_values(report, path, fields, {} if check is None else dict.fromkeys(fields, check))


def _check_key(report: Report, path: str, key: str) -> bool:
    base = key.partition("[")[0]
    reason = _REPLACED_KEYS.get(base)
    if reason is not None:
        report.error(path, f"attribute {key!r} {reason}")
        return False
    if base in _MAP_KEYS:
        if _MAP_KEY.match(key):
            return True
        report.error(path, f"bad key {key!r}: should have the form {base}[name]")
        return False
    if key in _PLAIN_KEYS:
        return True
    report.error(path, f"unknown attribute {key!r}; supported keys: {_SUPPORTED_KEYS}")
    return False


def _check_port(report: Report, path: str, value: str) -> bool:
    if _PORT.match(value) and 1 <= int(value) <= 65535:
        return True
    report.error(path, f"bad port {value!r}: must be a number 1..65535 written as a string")
    return False


def _check_method(report: Report, path: str, value: str) -> bool:
    if value in HTTP_METHODS:
        return True
    report.error(
        path, f"method {value!r} is not an upper-case HTTP method ({', '.join(HTTP_METHODS)})"
    )
    return False


_SOURCE_CHECKS: Mapping[str, _Check] = {
    "ipBlocks": check_ip_or_cidr,
    "notIpBlocks": check_ip_or_cidr,
}
_OPERATION_CHECKS: Mapping[str, _Check] = {
    "ports": _check_port,
    "notPorts": _check_port,
    "methods": _check_method,
    "notMethods": _check_method,
}
_VALUE_CHECKS: Mapping[str, _Check] = {
    "source.ip": check_ip_or_cidr,
    "destination.ip": check_ip_or_cidr,
    "destination.port": _check_port,
}

SECURITY_VALIDATORS: Mapping[str, Callable[[Resource, Report], None]] = {
    "AuthorizationPolicy": validate_authorization_policy,
    "PeerAuthentication": validate_peer_authentication,
}
