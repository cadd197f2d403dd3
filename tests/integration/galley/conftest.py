"""Galley as a real child process, and MCP subscribers that follow it.

Fixtures:

- ``launch_galley(files=None, env=None)`` writes ``files`` (relative name → text or bytes)
  into a fresh config directory and starts ``python -m services.galley`` on it through
  :class:`~shared.process.ServiceProcess`: every port 0, a ports file, a short debounce
  (:data:`DEBOUNCE_QUIET_S`, :data:`DEBOUNCE_MAX_S`), the webhook off unless ``env``
  turns it on (``SPLITMESH_GALLEY_WEBHOOK_ENABLED=true``). It returns a started
  :class:`GalleyProcess`. At teardown each Galley still running gets SIGTERM, and every
  stop a test saw (restarts included) must have exited 0: a graceful stop is behaviour.
  ``launch_module_galley`` is the same, shared by a module's tests and stopped after them.
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
from typing import Any, Protocol

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.config import kinds_by_collection
from shared.contracts.mcp.client import McpClient
from shared.contracts.mcp.snapshot import CollectionSnapshot
from shared.process import ServiceProcess, python_module

DEBOUNCE_QUIET_S = 0.05
DEBOUNCE_MAX_S = 0.2
HTTP_TIMEOUT_S = 10.0
START_TIMEOUT_S = 30.0

BeforeAccept = Callable[[CollectionSnapshot], Awaitable[None]]


class GalleyProcess:
    """One Galley child process on ``config_dir``; restartable on the same ports."""

    def __init__(self, *, config_dir: Path, workdir: Path, env: Mapping[str, str]) -> None:
        self.config_dir = config_dir
        self._workdir = workdir
        self._env = dict(env)
        self._process: ServiceProcess | None = None
        self.ports: dict[str, int] = {}
        self.exit_codes: list[int | None] = []

    def start(self, *, reuse_ports: bool = False) -> dict[str, int]:
        """Start Galley and wait until it serves; ``reuse_ports`` binds the previous ports."""
        if self.running:
            raise RuntimeError("Galley is already running")
        ports_file = self._workdir / "ports.json"
        env = {
            "SPLITMESH_GALLEY_CONFIG_DIR": str(self.config_dir),
            "SPLITMESH_GALLEY_PORTS_FILE": str(ports_file),
            "SPLITMESH_GALLEY_MCP_PORT": "0",
            "SPLITMESH_GALLEY_HTTP_PORT": "0",
            "SPLITMESH_GALLEY_WEBHOOK_PORT": "0",
            "SPLITMESH_GALLEY_WEBHOOK_ENABLED": "false",
            "SPLITMESH_GALLEY_DEBOUNCE_QUIET_S": str(DEBOUNCE_QUIET_S),
            "SPLITMESH_GALLEY_DEBOUNCE_MAX_S": str(DEBOUNCE_MAX_S),
            **self._env,
        }
        if reuse_ports:
            for name, port in self.ports.items():
                env[f"SPLITMESH_GALLEY_{name.upper()}_PORT"] = str(port)
        self._process = ServiceProcess(
            python_module("services.galley"),
            log_path=self._workdir / "galley.log",
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
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self._process is not None and self._process.running()

    @property
    def mcp_target(self) -> str:
        """``host:port`` of the MCP gRPC server."""
        return f"127.0.0.1:{self.ports['mcp']}"

    @property
    def webhook_url(self) -> str:
        """The validating webhook's HTTPS URL."""
        return f"https://127.0.0.1:{self.ports['webhook']}/validate"

    def get(self, path: str) -> httpx.Response:
        """GET ``path`` on the admin HTTP port."""
        return httpx.get(f"http://127.0.0.1:{self.ports['http']}{path}", timeout=HTTP_TIMEOUT_S)

    def debug(self, page: str) -> Any:
        """The JSON of ``/debug/<page>`` (``configz``, ``syncz``)."""
        response = self.get(f"/debug/{page}")
        response.raise_for_status()
        return response.json()

    def metric(self, sample: str, **labels: str) -> float:
        """The sum of the ``/metrics`` samples named ``sample`` whose labels include ``labels``.

        0.0 when there is none (a counter that was never incremented is not exported).
        """
        response = self.get("/metrics")
        response.raise_for_status()
        return sum(
            found.value
            for family in text_string_to_metric_families(response.text)
            for found in family.samples
            if found.name == sample and labels.items() <= found.labels.items()
        )

    def log_tail(self) -> str:
        """The end of Galley's log (stdout and stderr of every run), for failure messages."""
        try:
            text = (self._workdir / "galley.log").read_text(errors="replace")
        except OSError:
            return "<no log>"
        return "\n".join(text.splitlines()[-30:])


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
