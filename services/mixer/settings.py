"""Mixer's settings: one frozen object, defaults, validation, environment.

Environment variables are ``SPLITMESH_MIXER_<FIELD>`` (for example
``SPLITMESH_MIXER_ROLE=policy``); CLI flags override them. ``role`` picks what this
process serves, like Istio's ``istio-policy`` and ``istio-telemetry`` deployments:
``policy`` (ext_authz Check and RLS quota), ``telemetry`` (ALS reports) or ``all``.
Port 0 picks a free port; ``ports_file``, when set, receives the bound ports as JSON
once Mixer serves. Times are in seconds unless the name says otherwise.

Fail policies: ``check_fail_open`` decides what a Check answers when a rule cannot be
evaluated for a request (unset: MeshConfig ``policyCheckFailOpen``);
``quota_fail_open`` what a quota answers when the quota store (Redis) fails or takes
longer than ``quota_timeout_s``. ``redis_url`` (``redis://host:port``) replaces the
``redisServerUrl`` of every ``redisquota`` handler: the local launcher starts its own
Redis on a free port.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

from shared.settings import SettingsBase

ROLES = ("all", "policy", "telemetry")
_LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class MixerSettings(SettingsBase):
    """Everything Mixer can be told. See the module docstring and field comments."""

    env_prefix: ClassVar[str] = "SPLITMESH_MIXER_"

    role: str = "all"
    host: str = "127.0.0.1"
    grpc_port: int = 9091  # ext_authz, RLS and ALS (per role), gRPC health
    http_port: int = 9093  # /healthz /readyz /metrics /debug
    galley_address: str = "127.0.0.1:9901"
    redis_url: str | None = None  # when set, every redisquota handler uses this Redis
    check_fail_open: bool | None = None
    quota_fail_open: bool = True
    quota_timeout_s: float = 0.2
    check_cache_entries: int = 10_000  # 0 turns the check cache off
    check_cache_ttl_s: float = 60.0  # longest a decision is reused
    check_cache_uses: int = 10_000  # most times a decision is reused
    report_batch_max_entries: int = 100
    report_batch_max_time_s: float = 0.1
    report_queue_size: int = 1_000  # access-log messages waiting for dispatch
    load_shed_budget_ms: float = 0.0  # 0 turns load shedding off
    standard_telemetry: bool = True  # Istio's four standard metrics, built in
    otel_export_interval_s: float = 5.0  # the opentelemetry adapter's metric interval
    mcp_max_backoff_s: float = 10.0
    log_level: str = "info"
    log_json: bool = True
    otlp_endpoint: str | None = None  # Mixer's own traces
    ports_file: Path | None = None

    @property
    def serves_policy(self) -> bool:
        """Whether this role answers Check and quota."""
        return self.role in ("all", "policy")

    @property
    def serves_telemetry(self) -> bool:
        """Whether this role takes reports."""
        return self.role in ("all", "telemetry")

    def validate(self) -> Self:
        """Raise :class:`~shared.settings.SettingsError` naming the first bad setting."""
        self.require(self.role in ROLES, "role", f"must be one of {ROLES}")
        for port in ("grpc_port", "http_port"):
            self.require_port(port)
        host, sep, port = self.galley_address.rpartition(":")
        self.require(bool(sep and host and port.isdigit()), "galley_address", "must be host:port")
        self.require(self.quota_timeout_s > 0, "quota_timeout_s", "must be positive")
        for name in ("check_cache_entries", "check_cache_uses"):
            self.require(getattr(self, name) >= 0, name, "must be >= 0")
        self.require(self.check_cache_ttl_s >= 0, "check_cache_ttl_s", "must be >= 0")
        for name in ("report_batch_max_entries", "report_queue_size"):
            self.require(getattr(self, name) > 0, name, "must be positive")
        for name in ("report_batch_max_time_s", "otel_export_interval_s", "mcp_max_backoff_s"):
            self.require(getattr(self, name) > 0, name, "must be positive")
        self.require(self.load_shed_budget_ms >= 0, "load_shed_budget_ms", "must be >= 0")
        self.require(self.log_level in _LOG_LEVELS, "log_level", f"must be one of {_LOG_LEVELS}")
        return self
