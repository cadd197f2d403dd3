"""The agent's settings: one frozen object, defaults, validation, environment.

Environment variables are ``SPLITMESH_SIDECAR_<FIELD>``. List values are comma-separated:
``SPLITMESH_SIDECAR_LABELS=app=catalog,version=v1`` and
``SPLITMESH_SIDECAR_INBOUND=18081:28081:catalog.shop.svc.cluster.local`` (each item
``port:app_port:service[:name[:protocol]]``: bind ``port``, forward to the app on
``app_port``). Port 0 (outbound, admin) means "pick a free port at start".
``ports_file``, when set, receives ``{"admin": N, "outbound": M}`` once Envoy is live.
``run_dir`` holds the bootstrap and Envoy's log (a fresh temporary directory if unset).
``drain_time_s`` is how long a stopping agent lets Envoy drain; ``listener_drain_time_s``
how long Envoy keeps the connections of a listener that Pilot replaced (Istio's
``drainDuration``; see :mod:`sidecar.envoy_process`).

Mutual TLS: with ``citadel_address`` (``host:port`` of Citadel's CSR API) the agent gets
the workload's certificate for ``spiffe://<trust_domain>/ns/<namespace>/sa/<service
account>`` (``cert_validity_s`` asked for; 0 takes Citadel's default), proving who it
is first with the launcher's single-use token read from ``citadel_token_file``, then
with renewal tokens signed by its own certificate. It checks Citadel's roots every
``cert_root_poll_s`` and retries a failed signing with a back-off capped at
``cert_max_backoff_s``. Without ``citadel_address`` there is no identity and no mTLS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import ClassVar, Self

from shared.contracts.ca.spiffe import SpiffeId
from shared.settings import SettingsBase
from sidecar.node import InboundPort, WorkloadIdentity, parse_address, parse_labels

_LOG_LEVELS = ("debug", "info", "warning", "error")
_ENVOY_LOG_LEVELS = ("trace", "debug", "info", "warn", "warning", "error", "critical", "off")
_PROXY_TYPES = ("sidecar", "router")


@dataclass(frozen=True)
class SidecarSettings(SettingsBase):
    """Everything the agent can be told. See the field comments for units."""

    env_prefix: ClassVar[str] = "SPLITMESH_SIDECAR_"

    workload_name: str = ""
    namespace: str = "default"
    service_account: str = "default"
    labels: tuple[str, ...] = ()  # key=value
    inbound: tuple[str, ...] = ()  # port:app_port:service[:name[:protocol]]
    proxy_type: str = "sidecar"  # sidecar, or router for a gateway
    ip: str = "127.0.0.1"
    pilot_address: str = "127.0.0.1:15010"
    delta_xds: bool = False  # incremental xDS instead of state of the world
    outbound_port: int = 0
    admin_port: int = 0
    envoy_binary: Path | None = None
    envoy_log_level: str = "warn"
    envoy_concurrency: int = 2
    run_dir: Path | None = None
    ready_timeout_s: float = 30.0
    drain_time_s: float = 1.0  # on stop: how long Envoy drains before SIGTERM
    listener_drain_time_s: float = 45.0  # Envoy keeps a replaced listener's connections
    stop_grace_s: float = 5.0
    restart_backoff_s: float = 0.2
    restart_backoff_max_s: float = 10.0
    log_level: str = "info"
    log_json: bool = True
    ports_file: Path | None = None
    citadel_address: str | None = None  # host:port; None: no workload identity, no mTLS
    citadel_token_file: Path | None = None  # the launcher's bootstrap token
    cert_validity_s: int = 0  # 0: Citadel's default lifetime
    trust_domain: str = "cluster.local"
    cert_root_poll_s: float = 30.0
    cert_max_backoff_s: float = 30.0

    def validate(self) -> Self:
        """Raise :class:`~shared.settings.SettingsError` naming the first bad setting."""
        self.require(bool(self.workload_name), "workload_name", "must be set")
        self.require("." not in self.workload_name, "workload_name", "must not contain '.'")
        self.require(bool(self.namespace), "namespace", "must not be empty")
        self.require(
            self.proxy_type in _PROXY_TYPES, "proxy_type", f"must be one of {_PROXY_TYPES}"
        )
        for port in ("outbound_port", "admin_port"):
            self.require_port(port)
        for name, parse in (
            ("labels", lambda: parse_labels(self.labels)),
            ("inbound", self.inbound_ports),
            ("pilot_address", self.pilot),
            ("citadel_address", self.citadel),
        ):
            try:
                parse()
            except ValueError as exc:
                self.require(False, name, str(exc))
        self.require(self.log_level in _LOG_LEVELS, "log_level", f"must be one of {_LOG_LEVELS}")
        self.require(
            self.envoy_log_level in _ENVOY_LOG_LEVELS,
            "envoy_log_level",
            f"must be one of {_ENVOY_LOG_LEVELS}",
        )
        self.require(self.envoy_concurrency >= 1, "envoy_concurrency", "must be >= 1")
        self.require(
            self.citadel_address is None or self.citadel_token_file is not None,
            "citadel_token_file",
            "must be set when citadel_address is (the first certificate needs a token)",
        )
        if self.citadel_address is not None:
            try:
                self.spiffe_id()
            except ValueError as exc:
                self.require(False, "trust_domain", f"no SPIFFE identity: {exc}")
        self.require(self.cert_validity_s >= 0, "cert_validity_s", "must be >= 0")
        for positive in (
            "ready_timeout_s",
            "restart_backoff_s",
            "stop_grace_s",
            "cert_root_poll_s",
            "cert_max_backoff_s",
            "listener_drain_time_s",
        ):
            self.require(getattr(self, positive) > 0, positive, "must be > 0")
        self.require(self.drain_time_s >= 0, "drain_time_s", "must be >= 0")
        self.require(
            self.restart_backoff_max_s >= self.restart_backoff_s,
            "restart_backoff_max_s",
            f"must be >= restart_backoff_s ({self.restart_backoff_s})",
        )
        return self

    def pilot(self) -> tuple[str, int]:
        """Pilot's ``(host, port)`` from ``pilot_address``."""
        return parse_address(self.pilot_address)

    def citadel(self) -> tuple[str, int] | None:
        """Citadel's ``(host, port)``, or None without mutual TLS."""
        return None if self.citadel_address is None else parse_address(self.citadel_address)

    def spiffe_id(self) -> SpiffeId:
        """The workload's SPIFFE identity (``ValueError`` if a part is not a valid name)."""
        return SpiffeId(self.trust_domain, self.namespace, self.service_account)

    def inbound_ports(self) -> tuple[InboundPort, ...]:
        """The parsed ``inbound`` items."""
        return tuple(InboundPort.parse(item) for item in self.inbound)

    def identity(self) -> WorkloadIdentity:
        """The workload identity these settings describe."""
        return WorkloadIdentity(
            name=self.workload_name,
            namespace=self.namespace,
            service_account=self.service_account,
            labels=MappingProxyType(parse_labels(self.labels)),
            inbound=self.inbound_ports(),
            proxy_type="router" if self.proxy_type == "router" else "sidecar",
            ip=self.ip,
            tls=self.citadel_address is not None,
        )
