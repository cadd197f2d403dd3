"""Validation of the MeshConfig kind, after Istio's ValidateMeshConfig/ValidateProxyConfig.

Durations must be positive (``protocolDetectionTimeout`` may be 0: it turns detection
off), the drain must end before the parent shutdown, addresses are ``host:port``, ports
are 1-65535, the trust domain and its aliases are DNS names, the root namespace is a
namespace name, and each default ``exportTo`` follows the objects' own exportTo rules.
Records into the :class:`Report`; never raises on a parsed resource.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta

from services.galley.core.validation.common import (
    check_host_port,
    check_hostname,
    check_namespace,
    check_port,
    check_positive_duration,
)
from services.galley.core.validation.networking_checks import check_export_to
from services.galley.core.validation.report import Report
from shared.config import Resource
from shared.config.mesh import MeshConfigSpec, ProxyConfig


def validate_mesh_config(resource: Resource, report: Report) -> None:
    """Every rule of the module docstring, each issue under its ``spec.`` field path."""
    spec = resource.spec
    if not isinstance(spec, MeshConfigSpec):
        return
    for field, duration in (
        ("connectTimeout", spec.connect_timeout),
        ("reportBatchMaxTime", spec.report_batch_max_time),
        ("dnsRefreshRate", spec.dns_refresh_rate),
    ):
        check_positive_duration(report, f"spec.{field}", duration)
    if spec.protocol_detection_timeout < timedelta(0):
        report.error("spec.protocolDetectionTimeout", "must not be negative (0 turns it off)")
    if spec.report_batch_max_entries < 0:
        report.error("spec.reportBatchMaxEntries", "must not be negative")
    for field, address in (
        ("mixerCheckServer", spec.mixer_check_server),
        ("mixerReportServer", spec.mixer_report_server),
    ):
        if address:
            check_host_port(report, f"spec.{field}", address)
    if spec.trust_domain:
        check_hostname(report, "spec.trustDomain", spec.trust_domain, allow_wildcard=False)
    for index, alias in enumerate(spec.trust_domain_aliases):
        check_hostname(report, f"spec.trustDomainAliases[{index}]", alias, allow_wildcard=False)
    check_namespace(report, "spec.rootNamespace", spec.root_namespace)
    for field, export_to in (
        ("defaultServiceExportTo", spec.default_service_export_to),
        ("defaultVirtualServiceExportTo", spec.default_virtual_service_export_to),
        ("defaultDestinationRuleExportTo", spec.default_destination_rule_export_to),
    ):
        check_export_to(report, f"spec.{field}", export_to)
    _check_proxy_config(report, "spec.defaultConfig", spec.default_config)


def _check_proxy_config(report: Report, path: str, proxy: ProxyConfig) -> None:
    check_host_port(report, f"{path}.discoveryAddress", proxy.discovery_address)
    drain_ok = check_positive_duration(report, f"{path}.drainDuration", proxy.drain_duration)
    parent = proxy.parent_shutdown_duration
    parent_ok = check_positive_duration(report, f"{path}.parentShutdownDuration", parent)
    if drain_ok and parent_ok and proxy.drain_duration >= parent:
        report.error(
            f"{path}.drainDuration",
            "drain duration must be shorter than parentShutdownDuration",
        )
    check_port(report, f"{path}.proxyAdminPort", proxy.proxy_admin_port)
    check_port(report, f"{path}.statusPort", proxy.status_port)
    if proxy.concurrency < 0:
        report.error(f"{path}.concurrency", "must not be negative (0 means one per CPU)")


MESH_VALIDATORS: Mapping[str, Callable[[Resource, Report], None]] = {
    "MeshConfig": validate_mesh_config,
}
