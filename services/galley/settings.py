"""Galley's settings: one frozen object, defaults, validation, environment.

Environment variables are ``SPLITMESH_GALLEY_<FIELD>`` (for example
``SPLITMESH_GALLEY_MCP_PORT=9901``); CLI flags override them. Port 0 picks a free port;
``ports_file``, when set, receives the bound ports as JSON once Galley serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

from shared.settings import SettingsBase

_LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class GalleySettings(SettingsBase):
    """Everything Galley can be told. See the field comments for units."""

    env_prefix: ClassVar[str] = "SPLITMESH_GALLEY_"

    config_dir: Path = Path("examples/mesh")
    host: str = "127.0.0.1"
    mcp_port: int = 9901
    http_port: int = 15014
    webhook_enabled: bool = True
    webhook_port: int = 9443
    webhook_cert: Path | None = None
    webhook_key: Path | None = None
    debounce_quiet_s: float = 0.5
    debounce_max_s: float = 1.0
    max_file_bytes: int = 4 * 1024 * 1024
    default_namespace: str = "default"
    log_level: str = "info"
    log_json: bool = True
    otlp_endpoint: str | None = None
    ports_file: Path | None = None

    def validate(self) -> Self:
        """Raise :class:`~shared.settings.SettingsError` naming the first bad setting."""
        for port in ("mcp_port", "http_port", "webhook_port"):
            self.require_port(port)
        self.require(self.debounce_quiet_s >= 0, "debounce_quiet_s", "must be >= 0")
        self.require(
            self.debounce_max_s >= self.debounce_quiet_s,
            "debounce_max_s",
            f"must be >= debounce_quiet_s ({self.debounce_quiet_s})",
        )
        self.require(self.max_file_bytes > 0, "max_file_bytes", "must be positive")
        self.require(self.log_level in _LOG_LEVELS, "log_level", f"must be one of {_LOG_LEVELS}")
        self.require(
            (self.webhook_cert is None) == (self.webhook_key is None),
            "webhook_cert",
            "webhook_cert and webhook_key must be given together",
        )
        self.require(bool(self.default_namespace), "default_namespace", "must not be empty")
        self.require(
            self.config_dir.is_dir(), "config_dir", f"{self.config_dir} is not a directory"
        )
        return self
