"""Sidecar rules, as Istio's ``ValidateSidecar`` checks them.

:func:`validate_sidecar` records every problem of one spec into a :class:`Report` with
its field path (``spec.egress[0].hosts[1]``) and never raises. Pure function, safe to
call from any task.
"""

from __future__ import annotations

from services.galley.core.validation.common import check_dns_label, check_host_port, check_port
from services.galley.core.validation.networking_checks import (
    KNOWN_PROTOCOLS,
    UNIX_PREFIX,
    check_bind,
    check_namespaced_host,
    check_protocol,
    check_unix_address,
    check_workload_selector,
)
from services.galley.core.validation.report import Report
from shared.config.networking_sidecar import IstioIngressListener, SidecarSpec
from shared.config.networking_types import Port

_LOCAL_HOSTS = frozenset({"127.0.0.1", "0.0.0.0", "[::1]", "[::]"})


def validate_sidecar(spec: SidecarSpec, report: Report) -> None:
    """The workload selector, ingress and egress listeners of a Sidecar."""
    if spec.workload_selector is not None:
        check_workload_selector(report, "spec.workloadSelector", spec.workload_selector)
    if not spec.ingress and not spec.egress and spec.outbound_traffic_policy is None:
        report.error("spec", "sidecar: empty configuration provided")
    ports: set[int] = set()
    for index, ingress in enumerate(spec.ingress):
        path = f"spec.ingress[{index}]"
        _check_ingress(report, path, ingress)
        if ingress.port is not None:
            _check_unique_port(report, f"{path}.port.number", ingress.port.number, ports)
    _check_egress(report, spec)


def _check_ingress(report: Report, path: str, ingress: IstioIngressListener) -> None:
    if ingress.port is None:
        report.error(f"{path}.port", "port is required for ingress listeners")
    else:
        _check_listener_port(report, f"{path}.port", ingress.port)
        check_port(report, f"{path}.port.number", ingress.port.number)
    check_bind(report, f"{path}.bind", ingress.bind)
    endpoint = ingress.default_endpoint
    endpoint_path = f"{path}.defaultEndpoint"
    if not endpoint:
        report.error(endpoint_path, "defaultEndpoint is required for ingress listeners")
    elif endpoint.startswith(UNIX_PREFIX):
        check_unix_address(report, endpoint_path, endpoint)
    elif endpoint.rpartition(":")[0] not in _LOCAL_HOSTS:
        report.error(
            endpoint_path,
            f"defaultEndpoint {endpoint!r} must be 127.0.0.1:<port>, 0.0.0.0:<port>, "
            "[::1]:<port>, [::]:<port> or unix://<path>",
        )
    else:
        check_host_port(report, endpoint_path, endpoint)


def _check_egress(report: Report, spec: SidecarSpec) -> None:
    ports: set[int] = set()
    sockets: set[str] = set()
    for index, egress in enumerate(spec.egress):
        path = f"spec.egress[{index}]"
        if egress.port is None:
            if index != len(spec.egress) - 1:
                report.error(
                    f"{path}.port",
                    "the egress listener without a port must be the last listener",
                )
        else:
            port = egress.port
            _check_listener_port(report, f"{path}.port", port)
            if port.number == 0:
                _check_socket_listener(report, path, egress.bind, egress.capture_mode, sockets)
            else:
                check_port(report, f"{path}.port.number", port.number)
                _check_unique_port(report, f"{path}.port.number", port.number, ports)
                check_bind(report, f"{path}.bind", egress.bind)
        if not egress.hosts:
            report.error(f"{path}.hosts", "egress listener must contain at least one host")
        for host_index, host in enumerate(egress.hosts):
            check_namespaced_host(
                report, f"{path}.hosts[{host_index}]", host, require_namespace=True
            )


def _check_socket_listener(
    report: Report, path: str, bind: str | None, capture_mode: str | None, sockets: set[str]
) -> None:
    """Port 0 means a Unix domain socket listener: ``bind`` names the socket."""
    if bind is None or not bind.startswith(UNIX_PREFIX):
        report.error(f"{path}.bind", "a listener on port 0 needs a unix:// bind address")
        return
    check_unix_address(report, f"{path}.bind", bind)
    if bind in sockets:
        report.error(f"{path}.bind", f"unix socket {bind!r} is used by another listener")
    sockets.add(bind)
    if capture_mode not in (None, "DEFAULT", "NONE"):
        report.error(
            f"{path}.captureMode", "captureMode must be DEFAULT or NONE for unix socket listeners"
        )


def _check_listener_port(report: Report, path: str, port: Port) -> None:
    """Name and protocol are optional on Sidecar ports, but must be valid when set."""
    if port.name:
        check_dns_label(report, f"{path}.name", port.name, what="port name")
    if port.protocol is not None:
        check_protocol(report, f"{path}.protocol", port.protocol, KNOWN_PROTOCOLS)
    if port.target_port is not None:
        report.warning(f"{path}.targetPort", "targetPort has no effect on sidecars")


def _check_unique_port(report: Report, path: str, number: int, seen: set[int]) -> None:
    if number in seen:
        report.error(path, f"port {number} is used by another listener; ports must be unique")
    seen.add(number)
