"""A real control plane (Galley + Pilot processes) for agent tests, and agent processes.

Fixtures:

- ``control_plane`` (module scope): Galley and Pilot started by the launcher's
  :class:`~cli.launcher.mesh.Mesh` (with no workloads) on a config directory holding one
  ServiceEntry, ``echo.test.svc.cluster.local``, whose endpoint port is
  :attr:`ControlPlane.endpoint_port` (a free port).
- ``start_agent(delta=False, env=None)``: starts ``python -m sidecar`` for workload
  ``echo`` serving that endpoint (``env`` adds to its environment), waits for its ports
  file (written once Envoy is live) and returns an
  :class:`AgentProcess`. Agents still running at teardown are stopped.

Processes are started from the test's thread (the parent-death signal follows it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli.launcher.mesh import Mesh, MeshOptions
from cli.launcher.pilot_view import ProxySync, fetch_sync
from cli.launcher.workloads import WorkloadsFile
from shared.process import ServiceProcess, python_module
from sidecar.agent import free_port
from tests.integration.sidecar.procfs import children

WAIT_S = 20.0
NODE_ID = "sidecar~127.0.0.1~echo.test~test.svc.cluster.local"
ECHO = "echo.test.svc.cluster.local"


@dataclass
class ControlPlane:
    """Galley and Pilot, running."""

    mesh: Mesh
    endpoint_port: int

    @property
    def pilot_address(self) -> str:
        return f"127.0.0.1:{self.mesh.pilot.ports['grpc']}"

    def sync(self) -> dict[str, ProxySync]:
        """Pilot's view of the connected proxies."""
        return fetch_sync(self.mesh.pilot.url("/debug/syncz"))


@dataclass
class AgentProcess:
    """One ``python -m sidecar`` child and what it reported."""

    process: ServiceProcess
    ports: dict[str, int]
    run_dir: Path
    ports_file: Path

    def envoy_pids(self) -> list[int]:
        """The agent's Envoy child processes (normally one)."""
        assert self.process.pid is not None
        return children(self.process.pid)


def wait_for(check: Callable[[], bool], message: str, timeout: float = WAIT_S) -> None:
    """Poll ``check`` until it holds; fail with ``message`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{message} (after {timeout}s)")
        time.sleep(0.05)


SERVICE_ENTRY = """\
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {{name: echo, namespace: test}}
spec:
  hosts: [echo.test.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 8080, name: http, protocol: HTTP}}]
  endpoints:
    - address: 127.0.0.1
      ports: {{http: {port}}}
      labels: {{app: echo}}
"""


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """Galley and Pilot on a one-service config (see the module docstring)."""
    root = tmp_path_factory.mktemp("control-plane")
    config = root / "config"
    config.mkdir()
    endpoint_port = free_port()
    (config / "echo.yaml").write_text(SERVICE_ENTRY.format(port=endpoint_port))
    mesh = Mesh(
        MeshOptions(
            config_dir=config,
            workloads=WorkloadsFile(workloads=()),
            run_dir=root / "run",
            env={"SPLITMESH_GALLEY_DEBOUNCE_QUIET_S": "0.05"},
        )
    )
    mesh.start()
    yield ControlPlane(mesh=mesh, endpoint_port=endpoint_port)
    mesh.stop()


@pytest.fixture
def start_agent(
    control_plane: ControlPlane, tmp_path: Path
) -> Iterator[Callable[..., AgentProcess]]:
    """Start agents for workload ``echo`` (see the module docstring)."""
    started: list[ServiceProcess] = []

    def start(*, delta: bool = False, env: dict[str, str] | None = None) -> AgentProcess:
        run_dir = tmp_path / f"agent-{len(started)}"
        ports_file = run_dir / "ports.json"
        settings = {
            "SPLITMESH_SIDECAR_WORKLOAD_NAME": "echo",
            "SPLITMESH_SIDECAR_NAMESPACE": "test",
            "SPLITMESH_SIDECAR_LABELS": "app=echo",
            "SPLITMESH_SIDECAR_INBOUND": f"{control_plane.endpoint_port}:{free_port()}:{ECHO}",
            "SPLITMESH_SIDECAR_PILOT_ADDRESS": control_plane.pilot_address,
            "SPLITMESH_SIDECAR_DELTA_XDS": str(delta).lower(),
            "SPLITMESH_SIDECAR_RUN_DIR": str(run_dir),
            "SPLITMESH_SIDECAR_PORTS_FILE": str(ports_file),
            "SPLITMESH_SIDECAR_DRAIN_TIME_S": "0.1",
            "SPLITMESH_SIDECAR_RESTART_BACKOFF_S": "0.05",
            "SPLITMESH_SIDECAR_ENVOY_CONCURRENCY": "1",
            **(env or {}),
        }
        process = ServiceProcess(
            python_module("sidecar"),
            log_path=run_dir / "agent.log",
            env={**os.environ, **settings},
            ports_file=ports_file,
        )
        started.append(process)
        process.start()
        ports = process.wait_ready(WAIT_S)
        return AgentProcess(process=process, ports=ports, run_dir=run_dir, ports_file=ports_file)

    yield start
    for process in started:
        process.stop()
