"""The agent's settings: one frozen object, defaults, validation, environment.

Environment variables are ``SPLITMESH_SIDECAR_<FIELD>``. List values are comma-separated:
``SPLITMESH_SIDECAR_LABELS=app=catalog,version=v1`` and
``SPLITMESH_SIDECAR_INBOUND=18081:28081:catalog.shop.svc.cluster.local`` (each item
``port:app_port:service[:name[:protocol]]``: bind ``port``, forward to the app on
``app_port``). Port 0 (outbound, admin) means "pick a free port at start".
``ports_file``, when set, receives ``{"admin": N, "outbound": M}`` once Envoy is live.
``run_dir`` holds the bootstrap and Envoy's log (a fresh temporary directory if unset).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import ClassVar, Self

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
    drain_time_s: float = 1.0
    stop_grace_s: float = 5.0
    restart_backoff_s: float = 0.2
    restart_backoff_max_s: float = 10.0
    log_level: str = "info"
    log_json: bool = True
    ports_file: Path | None = None

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
        for positive in ("ready_timeout_s", "restart_backoff_s", "stop_grace_s"):
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
        )
