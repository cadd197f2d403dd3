"""A local mesh as child processes: Galley, Pilot, then each workload's app and agent.

:meth:`Mesh.start` goes in order and gates each step on readiness: Galley (``/readyz``:
it read the config directory), Pilot (``/ready``), every app (its port accepts), every
agent (its ports file appears once its Envoy is live), and last every proxy ACKed its
config (Pilot's ``/debug/syncz``). If a step fails, everything started is stopped and
:class:`MeshStartError` quotes the failing process's log. :meth:`Mesh.stop` (idempotent)
goes in reverse: all agents at once (each drains its Envoy), then the apps, Pilot, Galley.

Galley and Pilot bind free ports at their first start and keep them, so one restarted
with :meth:`ServiceRun.restart` comes back where the others expect it; a workload's ports
(app, Envoy admin, outbound) are picked just before it starts. Every child gets the
kernel's parent-death signal (:class:`shared.process.ServiceProcess`), so none outlives
the process that owns the mesh. Logs go to ``<run_dir>/logs``. Not thread-safe: one owner,
on the main thread (the parent-death signal follows the thread that spawned a child).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx

from cli.launcher.pilot_view import ProxySync, fetch_sync
from cli.launcher.state import ComponentState, MeshState
from cli.launcher.workloads import Workload, WorkloadsFile
from shared.process import ProcessStartError, ServiceProcess, python_module
from sidecar.agent import free_port
from sidecar.node import WorkloadIdentity

_POLL_S = 0.05
_HTTP_TIMEOUT_S = 2.0
_STOP_GRACE_S = 10.0

Report = Callable[[str], None]


class MeshStartError(RuntimeError):
    """A component did not start; everything started before it was stopped."""


@dataclass(frozen=True)
class MeshOptions:
    """What to run and where. ``env`` is added to every child's environment."""

    config_dir: Path
    workloads: WorkloadsFile
    run_dir: Path
    delta: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    start_timeout_s: float = 60.0
    drain_time_s: float = 0.5


class ServiceRun:
    """Galley or Pilot as a child process; it keeps the ports it first bound."""

    def __init__(
        self,
        kind: Literal["galley", "pilot"],
        *,
        port_names: tuple[str, ...],
        env: Mapping[str, str],
        ready_path: str,
        logs: Path,
    ) -> None:
        self.kind = kind
        self.ports = dict.fromkeys(port_names, 0)  # 0: the service binds free ports
        self.env = dict(env)  # the owner may add to it before start()
        self._ready_path = ready_path
        self._log = logs / f"{kind}.log"
        self._ports_file = logs / f"{kind}.ports.json"
        self._process: ServiceProcess | None = None

    @property
    def pid(self) -> int | None:
        """The pid while running."""
        return self._process.pid if self._process is not None and self.running else None

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.running()

    def url(self, path: str) -> str:
        """A URL on the service's HTTP port."""
        return f"http://127.0.0.1:{self.ports['http']}{path}"

    def start(self, timeout_s: float) -> None:
        """Start and wait until the ports file appears and the ready path answers 200."""
        prefix = f"SPLITMESH_{self.kind.upper()}_"
        env = {
            **self.env,
            **{f"{prefix}{name.upper()}_PORT": str(port) for name, port in self.ports.items()},
            f"{prefix}PORTS_FILE": str(self._ports_file),
            f"{prefix}LOG_JSON": "false",
        }
        process = ServiceProcess(
            python_module(f"services.{self.kind}"),
            log_path=self._log,
            env=env,
            ports_file=self._ports_file,
        )
        self._process = process
        process.start()
        deadline = time.monotonic() + timeout_s
        try:
            bound = process.wait_ready(timeout_s)
        except ProcessStartError as exc:
            raise MeshStartError(f"{self.kind}: {exc}") from exc
        self.ports = {name: bound[name] for name in self.ports}
        _wait(lambda: _http_ok(self.url(self._ready_path)), deadline, self.kind, process)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after a grace period; the exit code. Idempotent."""
        process, self._process = self._process, None
        return None if process is None else process.stop(_STOP_GRACE_S)

    def restart(self, timeout_s: float) -> None:
        """Stop and start again on the same ports."""
        self.stop()
        self.start(timeout_s)

    def state(self) -> ComponentState:
        """This service in ``state.json``."""
        return ComponentState(
            name=self.kind, kind=self.kind, pid=self.pid, ports=self.ports, log=self._log
        )


class WorkloadRun:
    """One workload: its app (when it has one) and its agent, which runs its Envoy."""

    def __init__(self, workload: Workload, *, options: MeshOptions) -> None:
        self.workload = workload
        self.identity = WorkloadIdentity(
            name=workload.name, namespace=workload.namespace, proxy_type=workload.type
        )
        self.ports = {} if workload.port is None else {"inbound": workload.port}
        self._options = options
        self._directory = options.run_dir / "sidecars" / workload.name
        self._app_log = options.run_dir / "logs" / f"{workload.name}.app.log"
        self._agent_log = options.run_dir / "logs" / f"{workload.name}.agent.log"
        self._ports_file = self._directory / "ports.json"
        self.app: ServiceProcess | None = None
        self.agent: ServiceProcess | None = None

    def _pick_ports(self) -> None:
        """Free ports for the app, Envoy's admin and outbound listener, picked late (once)."""
        if "admin" in self.ports:
            return
        self.ports["admin"] = free_port()
        if self.workload.has_app:
            self.ports["app"] = free_port()
        if self.workload.type == "sidecar":
            self.ports["outbound"] = free_port()

    @property
    def node_id(self) -> str:
        """The Envoy node id Pilot sees."""
        return self.identity.node_id()

    def start_app(self) -> None:
        """Spawn the app (returns at once; see :meth:`wait_app`)."""
        if not self.workload.has_app:
            return
        self._pick_ports()
        argv = self.workload.app_argv(
            app_port=self.ports["app"], outbound_port=self.ports.get("outbound")
        )
        self.app = ServiceProcess(argv, log_path=self._app_log, cwd=self._options.workloads.workdir)
        self.app.start()

    def wait_app(self, deadline: float) -> None:
        """Wait until the app accepts connections on its port."""
        if self.app is not None:
            port = self.ports["app"]
            _wait(lambda: _accepts(port), deadline, f"{self.workload.name} app", self.app)

    def start_agent(self, pilot_grpc_port: int) -> None:
        """Spawn the agent (returns at once; see :meth:`wait_agent`)."""
        self._pick_ports()
        self.agent = ServiceProcess(
            python_module("sidecar"),
            log_path=self._agent_log,
            env={**self._options.env, **self._agent_env(pilot_grpc_port)},
            ports_file=self._ports_file,
        )
        self.agent.start()

    def wait_agent(self, deadline: float) -> None:
        """Wait until the agent's Envoy is live (the agent writes its ports file then)."""
        assert self.agent is not None
        try:
            self.agent.wait_ready(max(0.0, deadline - time.monotonic()))
        except ProcessStartError as exc:
            raise MeshStartError(f"{self.workload.name} sidecar: {exc}") from exc

    def stop(self) -> None:
        """Stop the agent (draining Envoy), then the app. Idempotent."""
        for process in (self.agent, self.app):
            if process is not None:
                process.stop(_STOP_GRACE_S)

    def state(self) -> ComponentState:
        """This workload in ``state.json``."""
        return ComponentState(
            name=self.workload.name,
            kind="workload",
            pid=self.agent.pid if self.agent is not None and self.agent.running() else None,
            ports=self.ports,
            log=self._agent_log,
            node_id=self.node_id,
            app_pid=self.app.pid if self.app is not None and self.app.running() else None,
            app_log=self._app_log if self.workload.has_app else None,
        )

    def _agent_env(self, pilot: int) -> dict[str, str]:
        workload, options = self.workload, self._options
        env = {
            "WORKLOAD_NAME": workload.name,
            "NAMESPACE": workload.namespace,
            "SERVICE_ACCOUNT": workload.service_account,
            "LABELS": ",".join(f"{key}={value}" for key, value in workload.labels.items()),
            "PROXY_TYPE": workload.type,
            "PILOT_ADDRESS": f"127.0.0.1:{pilot}",
            "DELTA_XDS": str(options.delta).lower(),
            "ADMIN_PORT": str(self.ports["admin"]),
            "OUTBOUND_PORT": str(self.ports.get("outbound", 0)),
            "RUN_DIR": str(self._directory),
            "PORTS_FILE": str(self._ports_file),
            "DRAIN_TIME_S": str(options.drain_time_s),
            "LOG_JSON": "false",
        }
        if workload.service is not None and "app" in self.ports:
            env["INBOUND"] = f"{workload.port}:{self.ports['app']}:{workload.service}"
        return {f"SPLITMESH_SIDECAR_{key}": value for key, value in env.items()}


class Mesh:
    """The whole local mesh (see the module docstring)."""

    def __init__(self, options: MeshOptions, *, report: Report | None = None) -> None:
        self.options = options
        self._report = report or (lambda _message: None)
        logs = options.run_dir / "logs"
        self.galley = ServiceRun(
            "galley",
            port_names=("mcp", "http"),
            env={
                **options.env,
                "SPLITMESH_GALLEY_CONFIG_DIR": str(options.config_dir),
                "SPLITMESH_GALLEY_WEBHOOK_ENABLED": "false",
            },
            ready_path="/readyz",
            logs=logs,
        )
        self.pilot = ServiceRun(
            "pilot", port_names=("grpc", "http"), env=options.env, ready_path="/ready", logs=logs
        )
        self.workloads = {
            workload.name: WorkloadRun(workload, options=options)
            for workload in options.workloads.workloads
        }
        self._stopped = False

    def start(self) -> None:
        """Start everything in order, gated on readiness; roll back and raise on failure."""
        timeout = self.options.start_timeout_s
        try:
            self._report("starting Galley")
            self.galley.start(timeout)
            self.pilot.env["SPLITMESH_PILOT_GALLEY_ADDRESS"] = (
                f"127.0.0.1:{self.galley.ports['mcp']}"
            )
            self._report("starting Pilot")
            self.pilot.start(timeout)
            self._report(f"starting {len(self.workloads)} apps")
            for run in self.workloads.values():
                run.start_app()
            deadline = time.monotonic() + timeout
            for run in self.workloads.values():
                run.wait_app(deadline)
            self._report(f"starting {len(self.workloads)} sidecars")
            for run in self.workloads.values():
                run.start_agent(self.pilot.ports["grpc"])
            deadline = time.monotonic() + timeout
            for run in self.workloads.values():
                run.wait_agent(deadline)
            self._report("waiting for every proxy to ACK its config")
            self.wait_in_sync(timeout)
        except BaseException:
            self.stop()
            raise

    def wait_in_sync(self, timeout_s: float) -> None:
        """Wait until Pilot reports every workload's proxy connected and in sync."""
        wanted = {run.workload.name: run.node_id for run in self.workloads.values()}
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                sync = fetch_sync(self.pilot.url("/debug/syncz"))
            except httpx.HTTPError as exc:
                lagging: dict[str, str | None] = {"pilot": str(exc)}
            else:
                lagging = {name: _sync_problem(sync.get(node)) for name, node in wanted.items()}
            problems = {name: problem for name, problem in lagging.items() if problem}
            if not problems:
                return
            if time.monotonic() > deadline:
                details = "; ".join(f"{name}: {problem}" for name, problem in problems.items())
                raise MeshStartError(f"proxies not in sync after {timeout_s}s: {details}")
            time.sleep(_POLL_S)

    def stop(self) -> None:
        """Stop everything in reverse order. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._report("stopping")
        runs = list(self.workloads.values())
        if runs:
            with ThreadPoolExecutor(max_workers=len(runs)) as pool:
                list(pool.map(WorkloadRun.stop, runs))
        self.pilot.stop()
        self.galley.stop()

    def state(self, status: Literal["starting", "running"], launcher_pid: int) -> MeshState:
        """The mesh as ``state.json`` records it."""
        return MeshState(
            launcher_pid=launcher_pid,
            status=status,
            run_dir=self.options.run_dir.resolve(),
            config_dir=self.options.config_dir.resolve(),
            delta=self.options.delta,
            components=(
                self.galley.state(),
                self.pilot.state(),
                *(run.state() for run in self.workloads.values()),
            ),
        )


def _sync_problem(proxy: ProxySync | None) -> str | None:
    if proxy is None:
        return "not connected to Pilot"
    if proxy.in_sync:
        return None
    return proxy.last_nack or f"has not ACKed version {proxy.version}"


def _wait(ready: Callable[[], bool], deadline: float, what: str, process: ServiceProcess) -> None:
    while not ready():
        if not process.running():
            raise MeshStartError(f"{what} exited: {process.log_tail()}")
        if time.monotonic() > deadline:
            raise MeshStartError(f"{what} not ready in time: {process.log_tail()}")
        time.sleep(_POLL_S)


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=_HTTP_TIMEOUT_S).status_code == 200
    except httpx.HTTPError:
        return False


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=_HTTP_TIMEOUT_S):
            return True
    except OSError:
        return False
