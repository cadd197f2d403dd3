"""Galley as a real child process, and MCP subscribers that follow it.

Fixtures:

- ``launch_galley(files=None, env=None)`` writes ``files`` (relative name → text or bytes)
  into a fresh config directory and starts ``python -m services.galley`` on it
  (:class:`~tests.integration.service_process.ServiceUnderTest`): every port 0, a ports
  file, a short debounce (:data:`DEBOUNCE_QUIET_S`, :data:`DEBOUNCE_MAX_S`), the webhook
  off unless ``env`` turns it on (``SPLITMESH_GALLEY_WEBHOOK_ENABLED=true``). It returns a
  started :class:`GalleyProcess`. At teardown each Galley still running gets SIGTERM, and
  every stop a test saw (restarts included) must have exited 0: a graceful stop is
  behaviour. ``launch_module_galley`` is the same, shared by a module's tests and stopped
  after them.
- ``subscribe(galley, collections=..., before=None, ...)`` starts the shared
  :class:`~shared.contracts.mcp.client.McpClient` against a Galley and returns a
  :class:`Subscriber` that records every snapshot it accepted. ``before`` runs on each
  push first: raise to NACK it, never return to be a stuck sink. Clients are stopped
  before the Galleys they follow.

Everything runs on 127.0.0.1. Ownership: the fixtures own the processes and clients
they create; tests may stop and restart a Galley (:meth:`GalleyProcess.stop`,
:meth:`GalleyProcess.start`), from a worker thread when an event loop must keep running.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pytest

from shared.config import kinds_by_collection
from shared.contracts.mcp.client import McpClient
from shared.contracts.mcp.snapshot import CollectionSnapshot
from tests.integration.service_process import ServiceUnderTest

DEBOUNCE_QUIET_S = 0.05
DEBOUNCE_MAX_S = 0.2

BeforeAccept = Callable[[CollectionSnapshot], Awaitable[None]]


class GalleyProcess(ServiceUnderTest):
    """One Galley child process on ``config_dir``; restartable on the same ports.

    Every port 0, the short test debounce, the webhook off; ``env`` overrides any of these.
    """

    def __init__(self, *, config_dir: Path, workdir: Path, env: Mapping[str, str]) -> None:
        defaults = {
            "SPLITMESH_GALLEY_CONFIG_DIR": str(config_dir),
            "SPLITMESH_GALLEY_MCP_PORT": "0",
            "SPLITMESH_GALLEY_HTTP_PORT": "0",
            "SPLITMESH_GALLEY_WEBHOOK_PORT": "0",
            "SPLITMESH_GALLEY_WEBHOOK_ENABLED": "false",
            "SPLITMESH_GALLEY_DEBOUNCE_QUIET_S": str(DEBOUNCE_QUIET_S),
            "SPLITMESH_GALLEY_DEBOUNCE_MAX_S": str(DEBOUNCE_MAX_S),
        }
        super().__init__("galley", workdir=workdir, env={**defaults, **env})
        self.config_dir = config_dir

    @property
    def mcp_target(self) -> str:
        """``host:port`` of the MCP gRPC server."""
        return self.address("mcp")

    @property
    def webhook_url(self) -> str:
        """The validating webhook's HTTPS URL."""
        return f"https://127.0.0.1:{self.ports['webhook']}/validate"


class GalleyLauncher:
    """Starts Galleys on fresh config directories below ``root``; see the module docstring."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._launched: list[GalleyProcess] = []

    def __call__(
        self,
        files: Mapping[str, str | bytes] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> GalleyProcess:
        """Write ``files`` (relative name → content) into a new config dir; start Galley."""
        workdir = self._root / f"galley-{len(self._launched) + 1}"
        config_dir = workdir / "config"
        config_dir.mkdir(parents=True)
        for name, content in (files or {}).items():
            path = config_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
        galley = GalleyProcess(config_dir=config_dir, workdir=workdir, env=env or {})
        self._launched.append(galley)
        galley.start()
        return galley

    def stop_all(self) -> None:
        """SIGTERM every Galley still running; assert every stop of every run exited 0."""
        for galley in self._launched:
            galley.stop()
        for galley in self._launched:
            assert all(code == 0 for code in galley.exit_codes), (
                f"Galley did not exit 0 on SIGTERM (exit codes {galley.exit_codes}):\n"
                f"{galley.log_tail()}"
            )


@dataclass
class Subscriber:
    """A started MCP client and every snapshot it accepted, in arrival order."""

    client: McpClient
    received: list[CollectionSnapshot] = field(default_factory=list)

    def history(self, collection: str) -> list[CollectionSnapshot]:
        """The accepted snapshots of ``collection``, oldest first."""
        return [snapshot for snapshot in self.received if snapshot.collection == collection]


class Subscribe(Protocol):
    """The ``subscribe`` fixture's signature."""

    async def __call__(
        self,
        galley: GalleyProcess,
        *,
        collections: Sequence[str] | None = None,
        before: BeforeAccept | None = None,
        sink_id: str | None = None,
        max_backoff: float = 0.5,
    ) -> Subscriber: ...


@pytest.fixture
def launch_galley(tmp_path: Path) -> Iterator[GalleyLauncher]:
    """Galleys for one test, stopped (and checked) at its end."""
    launcher = GalleyLauncher(tmp_path)
    yield launcher
    launcher.stop_all()


@pytest.fixture(scope="module")
def launch_module_galley(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GalleyLauncher]:
    """Galleys shared by a test module (for read-only tests), stopped after its last test."""
    launcher = GalleyLauncher(tmp_path_factory.mktemp("galleys"))
    yield launcher
    launcher.stop_all()


@pytest.fixture
async def subscribe(launch_galley: GalleyLauncher) -> AsyncIterator[Subscribe]:
    """Start MCP subscribers; stopped at teardown, before the Galleys they follow."""
    clients: list[McpClient] = []
    numbers = itertools.count(1)

    async def start(
        galley: GalleyProcess,
        *,
        collections: Sequence[str] | None = None,
        before: BeforeAccept | None = None,
        sink_id: str | None = None,
        max_backoff: float = 0.5,
    ) -> Subscriber:
        received: list[CollectionSnapshot] = []

        async def handler(snapshot: CollectionSnapshot) -> None:
            if before is not None:
                await before(snapshot)
            received.append(snapshot)

        client = McpClient(
            target=galley.mcp_target,
            sink_id=sink_id or f"test-sink-{next(numbers)}",
            collections=list(collections or kinds_by_collection()),
            handler=handler,
            initial_backoff=min(0.05, max_backoff),
            max_backoff=max_backoff,
        )
        clients.append(client)
        await client.start()
        return Subscriber(client=client, received=received)

    yield start
    for client in clients:
        await client.stop()
