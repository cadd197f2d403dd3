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

import itertools
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from bench.ads_client import RejectFn, SimulatedProxy
from tests.integration.service_process import ServiceUnderTest

DEBOUNCE_QUIET_S = 0.02
DEBOUNCE_MAX_S = 0.2
WAIT_S = 15.0


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
