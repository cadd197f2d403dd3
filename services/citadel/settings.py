"""Citadel's settings: one frozen object, defaults, validation, environment.

Environment variables are ``SPLITMESH_CITADEL_<FIELD>`` (for example
``SPLITMESH_CITADEL_GRPC_PORT=8060``); CLI flags override them. Durations are seconds.
Port 0 picks a free port; ``ports_file``, when set, receives the bound ports as JSON once
Citadel serves.

Where the CA comes from: ``plugged_ca_dir`` (Istio's ``cacerts`` layout: ``ca-cert.pem``,
``ca-key.pem``, ``cert-chain.pem``, ``root-cert.pem``; never rotated by Citadel), else a
self-signed root generated on first start and kept in ``state_dir`` (keys 0600), rotated
once less than ``root_rotation_fraction`` of its life is left: the next root is trusted
first and signs once Citadel has served it for ``root_rotation_grace_s`` (a restart
starts the grace over). Tokens are verified with
``token_public_key`` (an Ed25519 public key, PEM), else with the public half of
``<state_dir>/token-signing.key``, generated on first start for the local launcher.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

from shared.contracts.ca.spiffe import SpiffeId
from shared.settings import SettingsBase

_LOG_LEVELS = ("debug", "info", "warning", "error")
CA_KEY_TYPES = ("ecdsa-p256", "rsa-2048")
CSR_KEY_TYPES = ("ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096")
DAY_S = 86400
MAX_WORKLOAD_TTL_S = 90 * DAY_S


@dataclass(frozen=True)
class CitadelSettings(SettingsBase):
    """Everything Citadel can be told. See the module docstring for the CA sources."""

    env_prefix: ClassVar[str] = "SPLITMESH_CITADEL_"

    host: str = "127.0.0.1"
    grpc_port: int = 8060
    http_port: int = 15015
    trust_domain: str = "cluster.local"
    state_dir: Path = Path(".splitmesh/citadel")
    plugged_ca_dir: Path | None = None
    ca_key_type: str = "ecdsa-p256"
    root_ttl_s: float = 10 * 365 * DAY_S
    root_rotation_fraction: float = 0.2
    root_rotation_grace_s: float = 3600.0
    root_check_interval_s: float = 60.0
    workload_cert_ttl_s: int = DAY_S
    max_workload_cert_ttl_s: int = MAX_WORKLOAD_TTL_S
    allowed_key_types: tuple[str, ...] = CSR_KEY_TYPES
    token_public_key: Path | None = None
    max_token_ttl_s: int = 3600
    max_csr_bytes: int = 16 * 1024
    log_level: str = "info"
    log_json: bool = True
    otlp_endpoint: str | None = None
    ports_file: Path | None = None

    @property
    def token_signing_key(self) -> Path:
        """Where the local launcher's token signing key lives (used without a public key)."""
        return self.state_dir / "token-signing.key"

    def validate(self) -> Self:
        """Raise :class:`~shared.settings.SettingsError` naming the first bad setting."""
        for port in ("grpc_port", "http_port"):
            self.require_port(port)
        self.require(_is_trust_domain(self.trust_domain), "trust_domain", "not a DNS name")
        self.require(
            self.ca_key_type in CA_KEY_TYPES, "ca_key_type", f"must be one of {CA_KEY_TYPES}"
        )
        self.require(self.root_ttl_s > 0, "root_ttl_s", "must be positive")
        self.require(
            0 < self.root_rotation_fraction < 1, "root_rotation_fraction", "must be in (0, 1)"
        )
        self.require(
            0 <= self.root_rotation_grace_s < self.root_ttl_s * self.root_rotation_fraction,
            "root_rotation_grace_s",
            "must be >= 0 and shorter than the rotation window (root_ttl_s x fraction)",
        )
        self.require(self.root_check_interval_s > 0, "root_check_interval_s", "must be positive")
        self.require(
            0 < self.max_workload_cert_ttl_s <= MAX_WORKLOAD_TTL_S,
            "max_workload_cert_ttl_s",
            f"must be in 1..{MAX_WORKLOAD_TTL_S} (90 days)",
        )
        self.require(
            0 < self.workload_cert_ttl_s <= self.max_workload_cert_ttl_s,
            "workload_cert_ttl_s",
            f"must be in 1..max_workload_cert_ttl_s ({self.max_workload_cert_ttl_s})",
        )
        unknown = sorted(set(self.allowed_key_types) - set(CSR_KEY_TYPES))
        self.require(
            bool(self.allowed_key_types) and not unknown,
            "allowed_key_types",
            f"must be a non-empty subset of {CSR_KEY_TYPES} (unknown: {unknown})",
        )
        self.require(self.max_token_ttl_s > 0, "max_token_ttl_s", "must be positive")
        self.require(self.max_csr_bytes >= 512, "max_csr_bytes", "must be >= 512")
        self.require(self.log_level in _LOG_LEVELS, "log_level", f"must be one of {_LOG_LEVELS}")
        if self.plugged_ca_dir is not None:
            self.require(
                self.plugged_ca_dir.is_dir(),
                "plugged_ca_dir",
                f"{self.plugged_ca_dir} is not a directory",
            )
        return self


def _is_trust_domain(name: str) -> bool:
    try:
        SpiffeId(name, "default", "default")
    except ValueError:
        return False
    return True
