"""Gateway rules, as Istio's ``ValidateGateway`` checks them.

:func:`validate_gateway` records every problem of one spec into a :class:`Report` with
its field path (``spec.servers[0].port.protocol``) and never raises. Pure function,
safe to call from any task.
"""

from __future__ import annotations

from services.galley.core.validation.common import check_labels, check_port
from services.galley.core.validation.networking_checks import (
    GATEWAY_PROTOCOLS,
    HTTP_PROTOCOLS,
    TLS_PROTOCOLS,
    check_bind,
    check_namespaced_host,
    check_protocol,
)
from services.galley.core.validation.report import Report
from shared.config.networking_gateway import GatewaySpec, Server, ServerTLSSettings


def validate_gateway(spec: GatewaySpec, report: Report) -> None:
    """The selector and every server of a Gateway; port names unique across servers."""
    check_labels(report, "spec.selector", spec.selector)
    if not spec.servers:
        report.error("spec.servers", "gateway must have at least one server")
    port_names: set[str] = set()
    for index, server in enumerate(spec.servers):
        path = f"spec.servers[{index}]"
        _check_server(report, path, server)
        name = server.port.name if server.port is not None else None
        if name:
            if name in port_names:
                report.error(
                    f"{path}.port.name", f"port names in servers must be unique: {name!r} repeats"
                )
            port_names.add(name)


def _check_server(report: Report, path: str, server: Server) -> None:
    if not server.hosts:
        report.error(f"{path}.hosts", "server must have at least one host")
    for index, host in enumerate(server.hosts):
        check_namespaced_host(report, f"{path}.hosts[{index}]", host, require_namespace=False)
    check_bind(report, f"{path}.bind", server.bind)
    if server.tls is not None:
        _check_server_tls(report, f"{path}.tls", server.tls)
    port = server.port
    if port is None:
        report.error(f"{path}.port", "server port is required")
        return
    check_port(report, f"{path}.port.number", port.number)
    if not port.name:
        report.error(f"{path}.port.name", "port name must be set")
    if port.target_port is not None:
        report.warning(f"{path}.port.targetPort", "targetPort has no effect on gateways")
    if not check_protocol(report, f"{path}.port.protocol", port.protocol, GATEWAY_PROTOCOLS):
        return
    protocol = (port.protocol or "").upper()
    if protocol in TLS_PROTOCOLS and server.tls is None:
        report.error(f"{path}.tls", f"server must have TLS settings for {protocol} ports")
    elif protocol not in TLS_PROTOCOLS and server.tls is not None:
        redirect_only = protocol in HTTP_PROTOCOLS and _is_redirect_only(server.tls)
        if not redirect_only:
            report.error(
                f"{path}.tls",
                f"server cannot have TLS settings for {protocol} ports "
                "(only httpsRedirect on HTTP ports)",
            )


def _is_redirect_only(tls: ServerTLSSettings) -> bool:
    return tls.mode == "PASSTHROUGH" and not (
        tls.server_certificate or tls.private_key or tls.ca_certificates or tls.credential_name
    )


def _check_server_tls(report: Report, path: str, tls: ServerTLSSettings) -> None:
    if tls.mode == "ISTIO_MUTUAL":
        for field, value in (
            ("serverCertificate", tls.server_certificate),
            ("privateKey", tls.private_key),
            ("caCertificates", tls.ca_certificates),
            ("credentialName", tls.credential_name),
        ):
            if value:
                report.error(f"{path}.{field}", f"ISTIO_MUTUAL TLS cannot have {field}")
        return
    if tls.mode not in ("SIMPLE", "MUTUAL") or tls.credential_name:
        return
    if not tls.server_certificate:
        report.error(f"{path}.serverCertificate", f"{tls.mode} TLS requires a server certificate")
    if not tls.private_key:
        report.error(f"{path}.privateKey", f"{tls.mode} TLS requires a private key")
    if tls.mode == "MUTUAL" and not tls.ca_certificates:
        report.error(f"{path}.caCertificates", "MUTUAL TLS requires a client CA bundle")
