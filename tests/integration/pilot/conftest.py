"""Galley and Pilot as real child processes, and Envoy-like ADS clients that follow Pilot.

Fixtures:

- ``mesh(files)`` writes ``files`` (relative name → YAML text) into a fresh config
  directory, starts ``python -m services.galley`` on it and ``python -m services.pilot``
  following that Galley (every port 0, a ports file, short debounces), waits until Pilot
  says ``/ready`` and returns a :class:`Mesh`. At teardown both get SIGTERM, and every stop
  a test saw (restarts included) must have exited 0: a graceful stop is behaviour.
- ``ads_client(pilot, ...)`` starts a :class:`bench.ads_client.SimulatedProxy` against a
  Pilot; clients are stopped before the processes they follow.

Everything runs on 127.0.0.1. Tests may stop and restart either process
(:meth:`ServiceUnderTest.stop`, :meth:`ServiceUnderTest.start` with ``reuse_ports``).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.ads_client import RejectFn, SimulatedProxy
from shared.process import ServiceProcess, python_module

DEBOUNCE_QUIET_S = 0.02
DEBOUNCE_MAX_S = 0.2
HTTP_TIMEOUT_S = 10.0
START_TIMEOUT_S = 30.0
WAIT_S = 15.0


class ServiceUnderTest:
    """One service child process (``python -m services.<name>``); restartable."""

    def __init__(self, name: str, *, workdir: Path, env: Mapping[str, str]) -> None:
        self.name = name
        self._workdir = workdir
        self._env = dict(env)
        self._process: ServiceProcess | None = None
        self.ports: dict[str, int] = {}
        self.exit_codes: list[int | None] = []

    def start(self, *, reuse_ports: bool = False) -> dict[str, int]:
        """Start the service and wait for its ports file; ``reuse_ports`` binds the old ports."""
        prefix = f"SPLITMESH_{self.name.upper()}_"
        ports_file = self._workdir / f"{self.name}-ports.json"
        env = {**self._env, f"{prefix}PORTS_FILE": str(ports_file)}
        if reuse_ports:
            env.update({f"{prefix}{port.upper()}_PORT": str(n) for port, n in self.ports.items()})
        self._process = ServiceProcess(
            python_module(f"services.{self.name}"),
            log_path=self._workdir / f"{self.name}.log",
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

    def address(self, port: str) -> str:
        """``127.0.0.1:<port>`` of a named port (``grpc``, ``mcp``)."""
        return f"127.0.0.1:{self.ports[port]}"

    def get(self, path: str) -> httpx.Response:
        """GET ``path`` on the admin HTTP port."""
        return httpx.get(f"http://127.0.0.1:{self.ports['http']}{path}", timeout=HTTP_TIMEOUT_S)

    def debug(self, page: str) -> Any:
        """The JSON of ``/debug/<page>``."""
        response = self.get(f"/debug/{page}")
        response.raise_for_status()
        return response.json()

    def metric(self, sample: str, **labels: str) -> float:
        """The sum of the ``/metrics`` samples named ``sample`` whose labels include ``labels``."""
        response = self.get("/metrics")
        response.raise_for_status()
        return sum(
            found.value
            for family in text_string_to_metric_families(response.text)
            for found in family.samples
            if found.name == sample and labels.items() <= found.labels.items()
        )

    async def wait_ok(self, path: str) -> None:
        """Poll ``path`` until it answers 200 (up to :data:`WAIT_S`)."""
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while (status := self.get(path).status_code) != 200:
            assert asyncio.get_running_loop().time() < deadline, f"{self.name} {path}: {status}"
            await asyncio.sleep(0.05)

    def log_tail(self) -> str:
        """The end of the service's log, for failure messages."""
        try:
            text = (self._workdir / f"{self.name}.log").read_text(errors="replace")
        except OSError:
            return "<no log>"
        return "\n".join(text.splitlines()[-30:])


@dataclass
class Mesh:
    """A running Galley on ``config_dir`` and the Pilot that follows it."""

    config_dir: Path
    galley: ServiceUnderTest
    pilot: ServiceUnderTest

    def write(self, name: str, text: str) -> None:
        """Replace (atomically) the config file ``name``."""
        path = self.config_dir / name
        partial = path.with_suffix(".partial")
        partial.write_text(text)
        partial.replace(path)

    def syncz(self, proxy_id: str) -> dict[str, Any]:
        """Pilot's /debug/syncz entry of ``proxy_id`` (the first connection of it)."""
        found = [p for p in self.pilot.debug("syncz")["proxies"] if p["proxy"] == proxy_id]
        assert found, f"{proxy_id} is not in /debug/syncz"
        return dict(found[0])

    def pilot_version(self) -> str:
        """The snapshot version Pilot serves now."""
        return str(self.pilot.debug("syncz")["version"])


class StartMesh(Protocol):
    """The ``mesh`` fixture's signature."""

    async def __call__(self, files: Mapping[str, str]) -> Mesh: ...


class StartClient(Protocol):
    """The ``ads_client`` fixture's signature."""

    async def __call__(
        self,
        pilot: ServiceUnderTest,
        node_id: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        delta: bool = False,
        reject: RejectFn | None = None,
        reconnect: bool = True,
    ) -> SimulatedProxy: ...


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[StartMesh]:
    """Start Galley + Pilot on a fresh config directory; see the module docstring."""
    started: list[ServiceUnderTest] = []
    numbers = itertools.count(1)

    async def start(files: Mapping[str, str]) -> Mesh:
        workdir = tmp_path / f"mesh-{next(numbers)}"
        config_dir = workdir / "config"
        config_dir.mkdir(parents=True)
        for name, text in files.items():
            (config_dir / name).write_text(text)
        galley = ServiceUnderTest(
            "galley",
            workdir=workdir,
            env={
                "SPLITMESH_GALLEY_CONFIG_DIR": str(config_dir),
                "SPLITMESH_GALLEY_MCP_PORT": "0",
                "SPLITMESH_GALLEY_HTTP_PORT": "0",
                "SPLITMESH_GALLEY_WEBHOOK_ENABLED": "false",
                "SPLITMESH_GALLEY_DEBOUNCE_QUIET_S": str(DEBOUNCE_QUIET_S),
                "SPLITMESH_GALLEY_DEBOUNCE_MAX_S": str(DEBOUNCE_MAX_S),
            },
        )
        started.append(galley)
        galley.start()
        pilot = ServiceUnderTest(
            "pilot",
            workdir=workdir,
            env={
                "SPLITMESH_PILOT_GALLEY_ADDRESS": galley.address("mcp"),
                "SPLITMESH_PILOT_GRPC_PORT": "0",
                "SPLITMESH_PILOT_HTTP_PORT": "0",
                "SPLITMESH_PILOT_DEBOUNCE_QUIET_S": str(DEBOUNCE_QUIET_S),
                "SPLITMESH_PILOT_DEBOUNCE_MAX_S": str(DEBOUNCE_MAX_S),
            },
        )
        started.append(pilot)
        pilot.start()
        await pilot.wait_ok("/ready")
        return Mesh(config_dir=config_dir, galley=galley, pilot=pilot)

    yield start
    for service in reversed(started):
        service.stop()
    for service in started:
        assert all(code == 0 for code in service.exit_codes), (
            f"{service.name} did not exit 0 on SIGTERM (exit codes {service.exit_codes}):\n"
            f"{service.log_tail()}"
        )


@pytest.fixture
async def ads_client(mesh: StartMesh) -> AsyncIterator[StartClient]:
    """Start simulated proxies; stopped at teardown, before the processes they follow."""
    clients: list[SimulatedProxy] = []

    async def start(
        pilot: ServiceUnderTest,
        node_id: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        delta: bool = False,
        reject: RejectFn | None = None,
        reconnect: bool = True,
    ) -> SimulatedProxy:
        client = SimulatedProxy(
            target=pilot.address("grpc"),
            node_id=node_id,
            metadata=metadata,
            delta=delta,
            reject=reject,
            reconnect=reconnect,
            max_backoff=0.2,
        )
        clients.append(client)
        await client.start()
        return client

    yield start
    for client in clients:
        await client.stop()
