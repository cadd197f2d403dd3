"""Pilot's settings: one frozen object, defaults, validation, environment.

Environment variables are ``SPLITMESH_PILOT_<FIELD>`` (for example
``SPLITMESH_PILOT_GRPC_PORT=15010``); CLI flags override them. Port 0 picks a free port;
``ports_file``, when set, receives the bound ports as JSON (``{"grpc": ..., "http": ...}``)
once Pilot serves. ``galley_address`` is Galley's MCP endpoint (``host:port``).
``push_concurrency`` bounds the proxy configs generated at once; ``send_concurrency`` the
xDS responses written at once over all streams (a push to many proxies otherwise buffers
every response at the same time).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

from shared.settings import SettingsBase

_LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class PilotSettings(SettingsBase):
    """Everything Pilot can be told. Durations are seconds."""

    env_prefix: ClassVar[str] = "SPLITMESH_PILOT_"

    galley_address: str = "127.0.0.1:9901"
    host: str = "127.0.0.1"
    grpc_port: int = 15010
    http_port: int = 8080
    debounce_quiet_s: float = 0.1
    debounce_max_s: float = 10.0
    push_concurrency: int = 4
    send_concurrency: int = 8
    log_level: str = "info"
    log_json: bool = True
    otlp_endpoint: str | None = None
    ports_file: Path | None = None

    def validate(self) -> Self:
        """Raise :class:`~shared.settings.SettingsError` naming the first bad setting."""
        host, _, port = self.galley_address.rpartition(":")
        self.require(
            bool(host) and port.isdigit() and 0 < int(port) <= 65535,
            "galley_address",
            f"{self.galley_address!r} is not host:port",
        )
        for setting in ("grpc_port", "http_port"):
            self.require_port(setting)
        self.require(self.debounce_quiet_s >= 0, "debounce_quiet_s", "must be >= 0")
        self.require(
            self.debounce_max_s >= self.debounce_quiet_s,
            "debounce_max_s",
            f"must be >= debounce_quiet_s ({self.debounce_quiet_s})",
        )
        self.require(self.push_concurrency >= 1, "push_concurrency", "must be at least 1")
        self.require(self.send_concurrency >= 1, "send_concurrency", "must be at least 1")
        self.require(self.log_level in _LOG_LEVELS, "log_level", f"must be one of {_LOG_LEVELS}")
        return self
