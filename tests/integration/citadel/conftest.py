"""Citadel as a real child process, and clients that ask it for certificates.

Fixtures:

- ``launch_citadel(env=None)`` starts ``python -m services.citadel`` through
  :class:`~shared.process.ServiceProcess` with every port 0, a ports file and a fresh
  ``state_dir``, after creating the launcher's token signing key there (as the local
  launcher does). It returns a started :class:`CitadelProcess`; tests may stop and
  restart it (same state directory, optionally the same ports). At teardown each Citadel
  still running gets SIGTERM, and every stop must have exited 0.
- ``CitadelProcess.token(namespace, service_account)`` mints a fresh single-use token and
  ``CitadelProcess.client(...)`` a :class:`~shared.contracts.ca.client.CertificateClient`
  whose token provider mints one per call; clients are closed at teardown.

Everything runs on 127.0.0.1; the fixtures own the processes and clients they create.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client.parser import text_string_to_metric_families

from services.citadel.adapters.key_files import load_or_create_token_key
from services.citadel.core.token import mint_token
from shared.contracts.ca.client import CertificateClient
from shared.contracts.ca.spiffe import SpiffeId
from shared.process import ServiceProcess, python_module

TRUST_DOMAIN = "cluster.local"
START_TIMEOUT_S = 30.0
HTTP_TIMEOUT_S = 10.0


class CitadelProcess:
    """One Citadel child process on its own state directory; restartable."""

    def __init__(self, *, workdir: Path, env: Mapping[str, str]) -> None:
        self.workdir = workdir
        self.state_dir = workdir / "state"
        self.token_key: Ed25519PrivateKey = load_or_create_token_key(
            self.state_dir / "token-signing.key"
        )
        self._env = dict(env)
        self._process: ServiceProcess | None = None
        self.ports: dict[str, int] = {}
        self.exit_codes: list[int | None] = []
        self.clients: list[CertificateClient] = []

    def start(self, *, reuse_ports: bool = False) -> dict[str, int]:
        """Start Citadel and wait until it serves; ``reuse_ports`` binds the previous ports."""
        ports_file = self.workdir / "ports.json"
        env = {
            "SPLITMESH_CITADEL_STATE_DIR": str(self.state_dir),
            "SPLITMESH_CITADEL_PORTS_FILE": str(ports_file),
            "SPLITMESH_CITADEL_GRPC_PORT": "0",
            "SPLITMESH_CITADEL_HTTP_PORT": "0",
            "SPLITMESH_CITADEL_TRUST_DOMAIN": TRUST_DOMAIN,
            **self._env,
        }
        if reuse_ports:
            for name, port in self.ports.items():
                env[f"SPLITMESH_CITADEL_{name.upper()}_PORT"] = str(port)
        self._process = ServiceProcess(
            python_module("services.citadel"),
            log_path=self.workdir / "citadel.log",
            env=env,
            ports_file=ports_file,
        )
        self._process.start()
        self.ports = self._process.wait_ready(START_TIMEOUT_S)
        return self.ports

    def stop(self) -> int | None:
        """SIGTERM and wait; the exit code (also kept in :attr:`exit_codes`). Idempotent."""
        process, self._process = self._process, None
        if process is None:
            return None
        code = process.stop()
        self.exit_codes.append(code)
        return code

    @property
    def target(self) -> str:
        """``host:port`` of the CSR gRPC API."""
        return f"127.0.0.1:{self.ports['grpc']}"

    def token(self, namespace: str = "default", service_account: str = "sleep") -> str:
        """A fresh single-use token for ``namespace``/``service_account``."""
        identity = SpiffeId(TRUST_DOMAIN, namespace, service_account)
        return mint_token(self.token_key, identity, ttl_s=300, now=time.time())

    def client(
        self, namespace: str = "default", service_account: str = "sleep"
    ) -> CertificateClient:
        """A client proving ``namespace``/``service_account`` with a new token per call."""

        async def tokens() -> str:
            return self.token(namespace, service_account)

        client = CertificateClient(self.target, tokens, timeout=HTTP_TIMEOUT_S)
        self.clients.append(client)
        return client

    def debug_root(self) -> Any:
        """The JSON of ``/debug/root``."""
        response = httpx.get(
            f"http://127.0.0.1:{self.ports['http']}/debug/root", timeout=HTTP_TIMEOUT_S
        )
        response.raise_for_status()
        return response.json()

    def metric(self, sample: str, **labels: str) -> float:
        """The sum of the ``/metrics`` samples named ``sample`` whose labels include ``labels``."""
        response = httpx.get(
            f"http://127.0.0.1:{self.ports['http']}/metrics", timeout=HTTP_TIMEOUT_S
        )
        response.raise_for_status()
        return sum(
            found.value
            for family in text_string_to_metric_families(response.text)
            for found in family.samples
            if found.name == sample and labels.items() <= found.labels.items()
        )

    def log_text(self) -> str:
        """Everything Citadel logged (stdout and stderr of every run)."""
        try:
            return (self.workdir / "citadel.log").read_text(errors="replace")
        except OSError:
            return "<no log>"


class LaunchCitadel(Protocol):
    """The ``launch_citadel`` fixture's signature."""

    def __call__(self, env: Mapping[str, str] | None = None) -> CitadelProcess: ...


@pytest.fixture
def _launched() -> Iterator[list[CitadelProcess]]:
    launched: list[CitadelProcess] = []
    yield launched
    for citadel in launched:
        citadel.stop()
    for citadel in launched:
        assert all(code == 0 for code in citadel.exit_codes), (
            f"Citadel did not exit 0 on SIGTERM (exit codes {citadel.exit_codes}):\n"
            f"{citadel.log_text()[-3000:]}"
        )


@pytest.fixture
async def launch_citadel(
    tmp_path: Path, _launched: list[CitadelProcess]
) -> AsyncIterator[LaunchCitadel]:
    """Start Citadel processes on fresh state directories; see the module docstring."""
    numbers = itertools.count(1)

    def launch(env: Mapping[str, str] | None = None) -> CitadelProcess:
        citadel = CitadelProcess(workdir=tmp_path / f"citadel-{next(numbers)}", env=env or {})
        _launched.append(citadel)
        citadel.start()
        return citadel

    yield launch
    for citadel in _launched:
        for client in citadel.clients:
            await client.close()
