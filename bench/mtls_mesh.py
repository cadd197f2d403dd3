"""Citadel and identity-carrying agents as local processes, for the mTLS benchmarks and tests.

:class:`CitadelRun` runs ``python -m services.citadel`` on its own state directory (the
launcher's token signing key is created there first, as the launcher does) and can be
stopped and started again on the same ports. :func:`agent_settings` is the environment
of ``python -m sidecar`` for a workload with a SPIFFE identity (Citadel's address and a
0600 token file written by :func:`write_token`); :func:`start_agent` spawns it and waits
for its ports file; :func:`start_shop_app` runs the demo shop app on a port.
:func:`control_plane` starts Galley and Pilot (the launcher's
:class:`~cli.launcher.mesh.Mesh` with no workloads) on a config directory.

Ownership: each helper returns the process it started; the caller stops it. Use from the
main thread (a child's parent-death signal follows the thread that spawned it). Errors:
:class:`~shared.process.ProcessStartError` when a process does not become ready.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from cli.launcher.mesh import Mesh, MeshOptions
from cli.launcher.workloads import WorkloadsFile
from services.citadel.adapters.key_files import load_or_create_token_key
from services.citadel.core.token import mint_token
from shared.contracts.ca.spiffe import SpiffeId
from shared.process import ProcessStartError, ServiceProcess, python_module

REPO = Path(__file__).resolve().parents[1]
TRUST_DOMAIN = "cluster.local"
START_TIMEOUT_S = 60.0
_HTTP_TIMEOUT_S = 5.0
_POLL_S = 0.02


class CitadelRun:
    """Citadel as a child process (module docstring); restarts keep its ports."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.state_dir = workdir / "state"
        self.token_key = load_or_create_token_key(self.state_dir / "token-signing.key")
        self.ports = {"grpc": 0, "http": 0}
        self._process: ServiceProcess | None = None

    def start(self, **settings: str) -> None:
        """Start (``settings``: extra ``SPLITMESH_CITADEL_<NAME>`` values) and wait for it."""
        ports_file = self.workdir / "ports.json"
        env = {
            "SPLITMESH_CITADEL_STATE_DIR": str(self.state_dir),
            "SPLITMESH_CITADEL_PORTS_FILE": str(ports_file),
            "SPLITMESH_CITADEL_TRUST_DOMAIN": TRUST_DOMAIN,
            "SPLITMESH_CITADEL_LOG_JSON": "false",
            **{f"SPLITMESH_CITADEL_{name.upper()}_PORT": str(p) for name, p in self.ports.items()},
            **{f"SPLITMESH_CITADEL_{name.upper()}": value for name, value in settings.items()},
        }
        self._process = ServiceProcess(
            python_module("services.citadel"),
            log_path=self.workdir / "citadel.log",
            env=env,
            ports_file=ports_file,
        )
        self._process.start()
        self.ports = self._process.wait_ready(START_TIMEOUT_S)

    def stop(self) -> None:
        """SIGTERM and wait. Idempotent."""
        process, self._process = self._process, None
        if process is not None:
            process.stop()

    @property
    def target(self) -> str:
        """The CSR API's ``host:port``."""
        return f"127.0.0.1:{self.ports['grpc']}"

    def token(self, namespace: str, service_account: str) -> str:
        """A fresh single-use bootstrap token for ``namespace/service_account``."""
        identity = SpiffeId(TRUST_DOMAIN, namespace, service_account)
        return mint_token(self.token_key, identity, ttl_s=300, now=time.time())

    def debug_root(self) -> Any:
        """Citadel's ``/debug/root``."""
        url = f"http://127.0.0.1:{self.ports['http']}/debug/root"
        return httpx.get(url, timeout=_HTTP_TIMEOUT_S).json()


def write_token(path: Path, token: str) -> Path:
    """Write a bootstrap token where the agent reads it (0600, as the launcher does)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(token)
    os.chmod(path, 0o600)
    return path


def agent_settings(
    *,
    workload: str,
    namespace: str,
    service_account: str,
    pilot_grpc_port: int,
    citadel: CitadelRun,
    run_dir: Path,
    inbound: str = "",
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """``SPLITMESH_SIDECAR_*`` for a workload with an identity (token written to run_dir)."""
    token = write_token(run_dir / "token", citadel.token(namespace, service_account))
    values = {
        "WORKLOAD_NAME": workload,
        "NAMESPACE": namespace,
        "SERVICE_ACCOUNT": service_account,
        "LABELS": f"app={service_account}",
        "INBOUND": inbound,
        "PILOT_ADDRESS": f"127.0.0.1:{pilot_grpc_port}",
        "RUN_DIR": str(run_dir),
        "PORTS_FILE": str(run_dir / "ports.json"),
        "DRAIN_TIME_S": "0.1",
        "ENVOY_CONCURRENCY": "1",
        "LOG_JSON": "false",
        "CITADEL_ADDRESS": citadel.target,
        "CITADEL_TOKEN_FILE": str(token),
        **(extra or {}),
    }
    return {f"SPLITMESH_SIDECAR_{key}": value for key, value in values.items() if value}


def start_agent(settings: Mapping[str, str]) -> tuple[ServiceProcess, dict[str, int]]:
    """Spawn ``python -m sidecar`` with ``settings``; return it and its ports once live."""
    run_dir = Path(settings["SPLITMESH_SIDECAR_RUN_DIR"])
    process = ServiceProcess(
        python_module("sidecar"),
        log_path=run_dir / "agent.log",
        env=settings,
        ports_file=run_dir / "ports.json",
    )
    process.start()
    try:
        return process, process.wait_ready(START_TIMEOUT_S)
    except ProcessStartError:
        process.stop()
        raise


def start_shop_app(log_dir: Path, service: str, port: int) -> ServiceProcess:
    """The demo shop app as ``service`` on ``port``; returns once it accepts connections."""
    command = [*python_module("examples.apps.shop"), "--service", service, "--version", "v1"]
    app = ServiceProcess(
        [*command, "--port", str(port)], log_path=log_dir / f"{service}.app.log", cwd=REPO
    )
    app.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _accepts(port):
        if not app.running() or time.monotonic() > deadline:
            app.stop()
            raise ProcessStartError(f"the {service} app never listened: {app.log_tail()}")
        time.sleep(_POLL_S)
    return app


def control_plane(root: Path, files: Mapping[str, str], env: Mapping[str, str]) -> Mesh:
    """Galley and Pilot started on ``root/config`` holding ``files`` (name → YAML)."""
    config = root / "config"
    config.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (config / name).write_text(text)
    mesh = Mesh(
        MeshOptions(
            config_dir=config,
            workloads=WorkloadsFile(workloads=()),
            run_dir=root / "run",
            env=env,
        )
    )
    mesh.start()
    return mesh


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
