"""DestinationRule (networking.istio.io/v1alpha3): policies for traffic to a service.

Load balancing, connection pool limits, outlier detection and client TLS, for the whole
host, per port, and per subset. Field names follow Istio's API reference. Immutable
values, safe to share between tasks; Galley's validation checks the ranges and rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field

from shared.config.base import Duration, SpecModel
from shared.config.networking_types import PortSelector


class HTTPCookie(SpecModel):
    """A cookie to hash on; Envoy generates it when absent and ``ttl`` is set."""

    name: str = ""
    path: str | None = None
    ttl: Duration | None = None


class ConsistentHashLB(SpecModel):
    """Session affinity: hash on exactly one of header, cookie or source IP."""

    http_header_name: str | None = None
    http_cookie: HTTPCookie | None = None
    use_source_ip: bool | None = None
    minimum_ring_size: int | None = None

    def keys_set(self) -> tuple[str, ...]:
        """The names of the hash keys that are set (valid when exactly one)."""
        keys = (
            ("httpHeaderName", self.http_header_name is not None),
            ("httpCookie", self.http_cookie is not None),
            ("useSourceIp", self.use_source_ip is not None),
        )
        return tuple(name for name, present in keys if present)


class LoadBalancerSettings(SpecModel):
    """A simple algorithm or consistent hashing (exactly one)."""

    simple: Literal["ROUND_ROBIN", "LEAST_CONN", "RANDOM", "PASSTHROUGH"] | None = None
    consistent_hash: ConsistentHashLB | None = None


class TcpKeepalive(SpecModel):
    """TCP keepalive probes on upstream connections."""

    probes: int | None = None
    time: Duration | None = None
    interval: Duration | None = None


class TCPSettings(SpecModel):
    """Limits common to HTTP and TCP upstream connections."""

    max_connections: int | None = None
    connect_timeout: Duration | None = None
    tcp_keepalive: TcpKeepalive | None = None


class HTTPSettings(SpecModel):
    """Limits for HTTP/1.1 and HTTP/2 upstream connections."""

    http1_max_pending_requests: int | None = None
    http2_max_requests: int | None = None
    max_requests_per_connection: int | None = None
    max_retries: int | None = None
    idle_timeout: Duration | None = None
    h2_upgrade_policy: Literal["DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"] | None = None


class ConnectionPoolSettings(SpecModel):
    """Connection pool limits (circuit breaking)."""

    tcp: TCPSettings | None = None
    http: HTTPSettings | None = None


class OutlierDetection(SpecModel):
    """Ejects hosts that keep failing from the load-balancing pool."""

    consecutive_errors: int | None = None
    consecutive_5xx_errors: int | None = Field(default=None, alias="consecutive5xxErrors")
    consecutive_gateway_errors: int | None = None
    interval: Duration | None = None
    base_ejection_time: Duration | None = None
    max_ejection_percent: int | None = None
    min_health_percent: int | None = None


class ClientTLSSettings(SpecModel):
    """TLS the sidecar originates towards the destination."""

    mode: Literal["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"] = "DISABLE"
    client_certificate: str | None = None
    private_key: str | None = None
    ca_certificates: str | None = None
    subject_alt_names: tuple[str, ...] = ()
    sni: str | None = None


class PortTrafficPolicy(SpecModel):
    """Traffic policy for one port of the destination, overriding the host-wide one."""

    port: PortSelector | None = None
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None


class TrafficPolicy(SpecModel):
    """Policies for a destination (or one subset of it)."""

    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None
    port_level_settings: tuple[PortTrafficPolicy, ...] = ()


class Subset(SpecModel):
    """A named group of a service's endpoints, selected by label (a version, say)."""

    name: str
    labels: Mapping[str, str] = Field(default_factory=dict)
    traffic_policy: TrafficPolicy | None = None


class DestinationRuleSpec(SpecModel):
    """Policies that apply to traffic for ``host`` once routing has happened."""

    host: str
    traffic_policy: TrafficPolicy | None = None
    subsets: tuple[Subset, ...] = ()
    export_to: tuple[str, ...] = ()
