"""DestinationRule rules, as Istio's ``ValidateDestinationRule`` checks them.

:func:`validate_destination_rule` records every problem of one spec into a
:class:`Report` with its field path (``spec.subsets[1].name``) and never raises. Pure
function, safe to call from any task.
"""

from __future__ import annotations

from services.galley.core.validation.common import (
    check_dns_label,
    check_hostname,
    check_labels,
    check_port,
)
from services.galley.core.validation.networking_checks import (
    check_duration,
    check_export_to,
    check_int_percent,
    check_non_negative,
)
from services.galley.core.validation.report import Report
from shared.config.networking_destinationrule import (
    ClientTLSSettings,
    ConnectionPoolSettings,
    DestinationRuleSpec,
    LoadBalancerSettings,
    OutlierDetection,
    PortTrafficPolicy,
    TrafficPolicy,
)


def validate_destination_rule(spec: DestinationRuleSpec, report: Report) -> None:
    """The host, the traffic policy and every subset of a DestinationRule."""
    check_hostname(report, "spec.host", spec.host)
    if spec.traffic_policy is not None:
        _check_traffic_policy(report, "spec.trafficPolicy", spec.traffic_policy)
    seen: set[str] = set()
    for index, subset in enumerate(spec.subsets):
        path = f"spec.subsets[{index}]"
        if subset.name in seen:
            report.error(f"{path}.name", f"duplicate subset name {subset.name!r}")
        seen.add(subset.name)
        check_dns_label(report, f"{path}.name", subset.name, what="subset name")
        check_labels(report, f"{path}.labels", subset.labels)
        if subset.traffic_policy is not None:
            _check_traffic_policy(report, f"{path}.trafficPolicy", subset.traffic_policy)
    check_export_to(report, "spec.exportTo", spec.export_to)


def _check_traffic_policy(report: Report, path: str, policy: TrafficPolicy) -> None:
    if not _check_policy_parts(report, path, policy) and not policy.port_level_settings:
        report.error(path, "traffic policy must have at least one field")
    for index, port_policy in enumerate(policy.port_level_settings):
        _check_port_policy(report, f"{path}.portLevelSettings[{index}]", port_policy)


def _check_port_policy(report: Report, path: str, policy: PortTrafficPolicy) -> None:
    if policy.port is None or policy.port.number is None:
        report.error(f"{path}.port", "port traffic policy must name a port number")
    else:
        check_port(report, f"{path}.port.number", policy.port.number)
    if not _check_policy_parts(report, path, policy):
        report.error(path, "port traffic policy must have at least one field")


def _check_policy_parts(
    report: Report, path: str, policy: TrafficPolicy | PortTrafficPolicy
) -> bool:
    """Check the four policies a (port) traffic policy may hold; False when none is set."""
    if policy.load_balancer is not None:
        _check_load_balancer(report, f"{path}.loadBalancer", policy.load_balancer)
    if policy.connection_pool is not None:
        _check_connection_pool(report, f"{path}.connectionPool", policy.connection_pool)
    if policy.outlier_detection is not None:
        _check_outlier_detection(report, f"{path}.outlierDetection", policy.outlier_detection)
    if policy.tls is not None:
        _check_client_tls(report, f"{path}.tls", policy.tls)
    parts = (policy.load_balancer, policy.connection_pool, policy.outlier_detection, policy.tls)
    return any(part is not None for part in parts)


def _check_load_balancer(report: Report, path: str, settings: LoadBalancerSettings) -> None:
    if settings.simple is not None and settings.consistent_hash is not None:
        report.error(path, "load balancer must set only one of simple or consistentHash")
    hashing = settings.consistent_hash
    if hashing is None:
        return
    path = f"{path}.consistentHash"
    keys = hashing.keys_set()
    if len(keys) != 1:
        found = f" (found {' and '.join(keys)})" if keys else ""
        report.error(
            path,
            f"consistent hash must set exactly one of httpHeaderName, httpCookie "
            f"or useSourceIp{found}",
        )
    if hashing.http_cookie is not None:
        if not hashing.http_cookie.name:
            report.error(f"{path}.httpCookie.name", "name required for httpCookie")
        if hashing.http_cookie.ttl is None:
            report.error(f"{path}.httpCookie.ttl", "ttl required for httpCookie")
    check_non_negative(report, f"{path}.minimumRingSize", hashing.minimum_ring_size)


def _check_connection_pool(report: Report, path: str, pool: ConnectionPoolSettings) -> None:
    if pool.tcp is None and pool.http is None:
        report.error(path, "connection pool must have at least one field")
    if pool.tcp is not None:
        tcp = pool.tcp
        check_non_negative(report, f"{path}.tcp.maxConnections", tcp.max_connections)
        if tcp.connect_timeout is not None:
            check_duration(report, f"{path}.tcp.connectTimeout", tcp.connect_timeout)
        keepalive = tcp.tcp_keepalive
        if keepalive is not None:
            check_non_negative(report, f"{path}.tcp.tcpKeepalive.probes", keepalive.probes)
            for name, value in (("time", keepalive.time), ("interval", keepalive.interval)):
                if value is not None:
                    check_duration(report, f"{path}.tcp.tcpKeepalive.{name}", value)
    if pool.http is not None:
        http = pool.http
        for name, count in (
            ("http1MaxPendingRequests", http.http1_max_pending_requests),
            ("http2MaxRequests", http.http2_max_requests),
            ("maxRequestsPerConnection", http.max_requests_per_connection),
            ("maxRetries", http.max_retries),
        ):
            check_non_negative(report, f"{path}.http.{name}", count)
        if http.idle_timeout is not None:
            check_duration(report, f"{path}.http.idleTimeout", http.idle_timeout)


def _check_outlier_detection(report: Report, path: str, outlier: OutlierDetection) -> None:
    if outlier.consecutive_errors is not None:
        report.warning(
            f"{path}.consecutiveErrors",
            "consecutiveErrors is deprecated; use consecutive5xxErrors or consecutiveGatewayErrors",
        )
    for name, count in (
        ("consecutiveErrors", outlier.consecutive_errors),
        ("consecutive5xxErrors", outlier.consecutive_5xx_errors),
        ("consecutiveGatewayErrors", outlier.consecutive_gateway_errors),
    ):
        check_non_negative(report, f"{path}.{name}", count)
    for name, duration in (
        ("interval", outlier.interval),
        ("baseEjectionTime", outlier.base_ejection_time),
    ):
        if duration is not None:
            check_duration(report, f"{path}.{name}", duration)
    for name, percent in (
        ("maxEjectionPercent", outlier.max_ejection_percent),
        ("minHealthPercent", outlier.min_health_percent),
    ):
        if percent is not None:
            check_int_percent(report, f"{path}.{name}", percent)


def _check_client_tls(report: Report, path: str, tls: ClientTLSSettings) -> None:
    if tls.mode != "MUTUAL":
        return
    if not tls.client_certificate:
        report.error(f"{path}.clientCertificate", "client certificate required for MUTUAL tls")
    if not tls.private_key:
        report.error(f"{path}.privateKey", "private key required for MUTUAL tls")
