"""ServiceEntry rules, as Istio's ``ValidateServiceEntry`` checks them.

:func:`validate_service_entry` records every problem of one spec into a :class:`Report`
with its field path (``spec.endpoints[0].address``) and never raises. Pure function,
safe to call from any task.
"""

from __future__ import annotations

from collections.abc import Set

from services.galley.core.validation.common import (
    check_dns_label,
    check_hostname,
    check_ip_address,
    check_ip_or_cidr,
    check_labels,
    check_port,
)
from services.galley.core.validation.networking_checks import (
    HTTP_PROTOCOLS,
    KNOWN_PROTOCOLS,
    TLS_PROTOCOLS,
    UNIX_PREFIX,
    check_export_to,
    check_non_negative,
    check_protocol,
    check_unix_address,
    check_workload_selector,
    is_ip,
)
from services.galley.core.validation.report import Report
from shared.config.networking_serviceentry import ServiceEntrySpec, WorkloadEntry


def validate_service_entry(spec: ServiceEntrySpec, report: Report) -> None:
    """Hosts, addresses, ports, endpoints and the resolution rules of a ServiceEntry."""
    _check_hosts(report, spec)
    for index, address in enumerate(spec.addresses):
        path = f"spec.addresses[{index}]"
        is_range = check_ip_or_cidr(report, path, address) and "/" in address
        if is_range and spec.resolution not in ("NONE", "STATIC"):
            report.error(path, "CIDR addresses are allowed only for NONE/STATIC resolution")
    port_names = _check_ports(report, spec)
    if spec.workload_selector is not None:
        check_workload_selector(report, "spec.workloadSelector", spec.workload_selector)
        if spec.endpoints:
            report.error("spec.endpoints", "only one of workloadSelector or endpoints is allowed")
    _check_resolution(report, spec)
    for index, endpoint in enumerate(spec.endpoints):
        _check_endpoint(report, f"spec.endpoints[{index}]", endpoint, port_names)
    check_export_to(report, "spec.exportTo", spec.export_to, allow_private=True)


def _check_hosts(report: Report, spec: ServiceEntrySpec) -> None:
    if not spec.hosts:
        report.error("spec.hosts", "service entry must have at least one host")
    for index, host in enumerate(spec.hosts):
        path = f"spec.hosts[{index}]"
        if host == "*":
            report.error(path, "invalid host '*': a service entry cannot match every host")
        else:
            check_hostname(report, path, host)
    if spec.resolution != "NONE" and len(spec.hosts) > 1:
        for index, port in enumerate(spec.ports):
            protocol = (port.protocol or "").upper()
            if protocol not in HTTP_PROTOCOLS | TLS_PROTOCOLS:
                report.error(
                    f"spec.ports[{index}].protocol",
                    f"multiple hosts need HTTP or TLS ports to tell them apart "
                    f"(resolution {spec.resolution}), not {port.protocol!r}",
                )


def _check_ports(report: Report, spec: ServiceEntrySpec) -> Set[str]:
    """Check the service ports; return their names (for the endpoints' port maps)."""
    if not spec.ports:
        report.error("spec.ports", "service entry must have at least one port")
    names: set[str] = set()
    numbers: set[int] = set()
    for index, port in enumerate(spec.ports):
        path = f"spec.ports[{index}]"
        check_port(report, f"{path}.number", port.number)
        if port.number in numbers:
            report.error(f"{path}.number", f"port {port.number} is already defined")
        numbers.add(port.number)
        if port.name is None:
            report.error(f"{path}.name", "port name is required")
        else:
            if port.name in names:
                report.error(f"{path}.name", f"port name {port.name!r} is already defined")
            names.add(port.name)
            check_dns_label(report, f"{path}.name", port.name, what="port name")
        check_protocol(report, f"{path}.protocol", port.protocol, KNOWN_PROTOCOLS)
        if port.target_port is not None:
            check_port(report, f"{path}.targetPort", port.target_port)
    return names


def _check_resolution(report: Report, spec: ServiceEntrySpec) -> None:
    if spec.resolution == "NONE" and spec.endpoints:
        report.error("spec.endpoints", "no endpoints should be provided for resolution NONE")
    elif spec.resolution == "STATIC":
        if not spec.endpoints and spec.workload_selector is None:
            report.error("spec.endpoints", "endpoints must be provided for resolution STATIC")
        for index, endpoint in enumerate(spec.endpoints):
            path = f"spec.endpoints[{index}].address"
            if endpoint.address.startswith(UNIX_PREFIX):
                check_unix_address(report, path, endpoint.address)
            else:
                check_ip_address(report, path, endpoint.address)
    elif spec.resolution == "DNS":
        if not spec.endpoints:
            for index, host in enumerate(spec.hosts):
                if host.startswith("*"):
                    report.error(
                        f"spec.hosts[{index}]",
                        f"wildcard host {host!r} cannot be resolved with resolution DNS "
                        "unless endpoints are given",
                    )
        for index, endpoint in enumerate(spec.endpoints):
            if not is_ip(endpoint.address):
                check_hostname(
                    report,
                    f"spec.endpoints[{index}].address",
                    endpoint.address,
                    allow_wildcard=False,
                )


def _check_endpoint(
    report: Report, path: str, endpoint: WorkloadEntry, port_names: Set[str]
) -> None:
    for name, number in endpoint.ports.items():
        item = f"{path}.ports.{name}"
        if name not in port_names:
            report.error(item, f"endpoint port {name!r} is not defined by the service entry")
        check_port(report, item, number)
    check_labels(report, f"{path}.labels", endpoint.labels)
    check_non_negative(report, f"{path}.weight", endpoint.weight)
