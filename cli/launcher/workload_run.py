"""One workload of the local mesh: its app (when it has one) and its agent with Envoy.

The app's port and the sidecar's Envoy admin and outbound ports come from the mesh's
:class:`~cli.launcher.ports.PortPicker` just before the app starts (once; a restart keeps
them). The agent is told its identity, Pilot's address and, when the mesh runs Citadel,
Citadel's address, the trust domain and the file holding its bootstrap token
(``SPLITMESH_SIDECAR_CITADEL_*``). Not thread-safe: one owner (the mesh).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from cli.launcher.mesh_options import MeshOptions
from cli.launcher.ports import PortPicker
from cli.launcher.service_run import STOP_GRACE_S, MeshStartError, accepts, wait_until
from cli.launcher.state import ComponentState
from cli.launcher.workloads import Workload
from shared.process import ProcessStartError, ServiceProcess, python_module
from sidecar.node import WorkloadIdentity

TOKEN_FILE = "citadel.token"


@dataclass(frozen=True, slots=True)
class CitadelAccess:
    """Where an agent asks for its certificate (``host:port``) and for which trust domain."""

    address: str
    trust_domain: str


class WorkloadRun:
    """One workload: its app (when it has one) and its agent, which runs its Envoy."""

    def __init__(self, workload: Workload, *, options: MeshOptions, picker: PortPicker) -> None:
        self.workload = workload
        self.identity = WorkloadIdentity(
            name=workload.name, namespace=workload.namespace, proxy_type=workload.type
        )
        self.ports = {} if workload.port is None else {"inbound": workload.port}
        self._options = options
        self._picker = picker
        self.directory = options.run_dir / "sidecars" / workload.name
        self._app_log = options.run_dir / "logs" / f"{workload.name}.app.log"
        self._agent_log = options.run_dir / "logs" / f"{workload.name}.agent.log"
        self._ports_file = self.directory / "ports.json"
        self.app: ServiceProcess | None = None
        self.agent: ServiceProcess | None = None

    @property
    def token_file(self) -> Path:
        """Where the launcher writes this workload's Citadel token."""
        return self.directory / TOKEN_FILE

    def _pick_ports(self) -> None:
        """Ports for the app, Envoy's admin and outbound listener, picked late (once)."""
        if "admin" in self.ports:
            return
        self.ports["admin"] = self._picker.pick()
        if self.workload.has_app:
            self.ports["app"] = self._picker.pick()
        if self.workload.type == "sidecar":
            self.ports["outbound"] = self._picker.pick()

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
            wait_until(lambda: accepts(port), deadline, f"{self.workload.name} app", self.app)

    def start_agent(self, pilot_grpc_port: int, citadel: CitadelAccess | None = None) -> None:
        """Spawn the agent (returns at once; see :meth:`wait_agent`).

        With ``citadel``, the token file must have been written (:attr:`token_file`).
        """
        self._pick_ports()
        self.agent = ServiceProcess(
            python_module("sidecar"),
            log_path=self._agent_log,
            env={**self._options.env, **self._agent_env(pilot_grpc_port, citadel)},
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
                process.stop(STOP_GRACE_S)

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

    def _agent_env(self, pilot: int, citadel: CitadelAccess | None) -> dict[str, str]:
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
            "RUN_DIR": str(self.directory),
            "PORTS_FILE": str(self._ports_file),
            "DRAIN_TIME_S": str(options.drain_time_s),
            "LOG_JSON": "false",
        }
        if workload.service is not None and "app" in self.ports:
            env["INBOUND"] = f"{workload.port}:{self.ports['app']}:{workload.service}"
        if citadel is not None:
            env["CITADEL_ADDRESS"] = citadel.address
            env["CITADEL_TOKEN_FILE"] = str(self.token_file)
            env["TRUST_DOMAIN"] = citadel.trust_domain
        return {f"SPLITMESH_SIDECAR_{key}": value for key, value in env.items()}
