"""Citadel as a real child process, and clients that ask it for certificates.

Fixtures:

- ``launch_citadel(env=None)`` starts ``python -m services.citadel``
  (:class:`~tests.integration.service_process.ServiceUnderTest`) with every port 0, a
  ports file and a fresh ``state_dir``, after creating the launcher's token signing key
  there (as the local launcher does). It returns a started :class:`CitadelProcess`; tests
  may stop and restart it (same state directory, optionally the same ports). At teardown
  each Citadel still running gets SIGTERM, and every stop must have exited 0.
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

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.citadel.adapters.key_files import load_or_create_token_key
from services.citadel.core.token import mint_token
from shared.contracts.ca.client import CertificateClient
from shared.contracts.ca.spiffe import SpiffeId
from tests.integration.service_process import HTTP_TIMEOUT_S, ServiceUnderTest

TRUST_DOMAIN = "cluster.local"


class CitadelProcess(ServiceUnderTest):
    """One Citadel child process on its own state directory; restartable."""

    def __init__(self, *, workdir: Path, env: Mapping[str, str]) -> None:
        self.state_dir = workdir / "state"
        self.token_key: Ed25519PrivateKey = load_or_create_token_key(
            self.state_dir / "token-signing.key"
        )
        defaults = {
            "SPLITMESH_CITADEL_STATE_DIR": str(self.state_dir),
            "SPLITMESH_CITADEL_GRPC_PORT": "0",
            "SPLITMESH_CITADEL_HTTP_PORT": "0",
            "SPLITMESH_CITADEL_TRUST_DOMAIN": TRUST_DOMAIN,
        }
        super().__init__("citadel", workdir=workdir, env={**defaults, **env})
        self.clients: list[CertificateClient] = []

    @property
    def target(self) -> str:
        """``host:port`` of the CSR gRPC API."""
        return self.address("grpc")

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
        return self.debug("root")


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
