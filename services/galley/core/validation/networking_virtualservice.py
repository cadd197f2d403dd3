"""VirtualService rules, as Istio's ``ValidateVirtualService`` checks them.

:func:`validate_virtual_service` records every problem of one spec into a
:class:`Report` with its field path (``spec.http[0].route[1].weight``) and never raises.
Pure function, safe to call from any task.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.galley.core.validation.common import (
    check_hostname,
    check_ip_or_cidr,
    check_labels,
    check_port,
)
from services.galley.core.validation.networking_checks import (
    MESH_GATEWAY,
    check_destination,
    check_export_to,
    check_gateway_names,
    check_weights,
    is_ip,
)
from services.galley.core.validation.networking_http import check_http_route
from services.galley.core.validation.report import Report
from shared.config.networking_virtualservice import (
    L4MatchAttributes,
    RouteDestination,
    TCPRoute,
    TLSMatchAttributes,
    TLSRoute,
    VirtualServiceSpec,
)


def validate_virtual_service(spec: VirtualServiceSpec, report: Report) -> None:
    """Hosts, gateways, and every HTTP, TCP and TLS route of a VirtualService."""
    _check_hosts(report, spec)
    check_gateway_names(report, "spec.gateways", spec.gateways)
    if not (spec.http or spec.tcp or spec.tls):
        report.error("spec", "http, tcp or tls must be provided in virtual service")
    for index, http in enumerate(spec.http):
        check_http_route(report, f"spec.http[{index}]", http)
    for index, tcp in enumerate(spec.tcp):
        _check_tcp_route(report, f"spec.tcp[{index}]", tcp)
    for index, tls in enumerate(spec.tls):
        _check_tls_route(report, f"spec.tls[{index}]", tls, spec.hosts)
    check_export_to(report, "spec.exportTo", spec.export_to)


def _check_hosts(report: Report, spec: VirtualServiceSpec) -> None:
    if not spec.hosts:
        report.error("spec.hosts", "virtual service must have at least one host")
    bound_to_mesh = not spec.gateways or MESH_GATEWAY in spec.gateways
    seen: set[str] = set()
    for index, host in enumerate(spec.hosts):
        path = f"spec.hosts[{index}]"
        if host == "*" and bound_to_mesh:
            report.error(
                path, "wildcard host * is allowed only for virtual services bound to gateways"
            )
        elif not is_ip(host):
            check_hostname(report, path, host)
        if host.lower() in seen:
            report.error(path, f"duplicate host {host!r} in virtual service")
        seen.add(host.lower())


def _check_l4_match(
    report: Report, path: str, match: L4MatchAttributes | TLSMatchAttributes
) -> None:
    for index, subnet in enumerate(match.destination_subnets):
        check_ip_or_cidr(report, f"{path}.destinationSubnets[{index}]", subnet)
    if isinstance(match, L4MatchAttributes) and match.source_subnet is not None:
        check_ip_or_cidr(report, f"{path}.sourceSubnet", match.source_subnet)
    if match.port is not None:
        check_port(report, f"{path}.port", match.port)
    check_labels(report, f"{path}.sourceLabels", match.source_labels)
    check_gateway_names(report, f"{path}.gateways", match.gateways)


def _check_l4_destinations(
    report: Report, path: str, routes: Sequence[RouteDestination], kind: str
) -> None:
    if not routes:
        report.error(path, f"{kind} route is required")
    for index, destination in enumerate(routes):
        check_destination(report, f"{path}[{index}].destination", destination.destination)
    check_weights(report, path, [destination.weight for destination in routes])


def _check_tcp_route(report: Report, path: str, tcp: TCPRoute) -> None:
    for index, match in enumerate(tcp.match):
        _check_l4_match(report, f"{path}.match[{index}]", match)
    _check_l4_destinations(report, f"{path}.route", tcp.route, "TCP")


def _check_tls_route(report: Report, path: str, tls: TLSRoute, hosts: Sequence[str]) -> None:
    if not tls.match:
        report.error(f"{path}.match", "TLS route must have at least one match condition")
    for index, match in enumerate(tls.match):
        item = f"{path}.match[{index}]"
        if not match.sni_hosts:
            report.error(f"{item}.sniHosts", "TLS match must have at least one SNI host")
        for sni_index, sni in enumerate(match.sni_hosts):
            sni_path = f"{item}.sniHosts[{sni_index}]"
            if check_hostname(report, sni_path, sni) and not any(
                _host_covers(host, sni) for host in hosts
            ):
                report.error(
                    sni_path, f"SNI host {sni!r} is not covered by any of the virtual service hosts"
                )
        _check_l4_match(report, item, match)
    _check_l4_destinations(report, f"{path}.route", tls.route, "TLS")


def _host_covers(outer: str, inner: str) -> bool:
    """True when every name matched by ``inner`` is also matched by ``outer``."""
    outer, inner = outer.lower(), inner.lower()
    if outer == "*":
        return True
    if outer.startswith("*."):
        return inner.endswith(outer[1:])
    return inner == outer
