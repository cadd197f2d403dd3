"""A local mesh as child processes: Istio 1.4's split control plane, then the workloads.

:meth:`Mesh.start` goes in order and gates each step on readiness: Redis (when
``redis`` is on and ``redis-server`` is installed; it answers PING), Galley
(``/readyz``: it read the config directory), Citadel (``/readyz``: its CA is loaded),
Mixer (``/readyz``: it has Galley's config), Pilot (``/ready``), every app (its port
accepts), every agent (its ports file appears once its Envoy is live), and last every
proxy ACKed its config (Pilot's ``/debug/syncz``). Citadel and Mixer run only when
:class:`~cli.launcher.mesh_options.MeshOptions` asks. If a step fails, everything
started is stopped and :class:`MeshStartError` quotes the failing process's log.
:meth:`Mesh.stop` (idempotent) goes in reverse: all agents at once (each drains its
Envoy), the apps, Pilot, Mixer, Citadel, Galley, Redis.

Mixer listens where the config directory's MeshConfig says (``mixerCheckServer``; see
:mod:`cli.launcher.mesh_config`), because that is where Pilot points every sidecar; a
port already taken fails the start with a message naming the file. With Citadel, the
launcher holds the token signing key (in ``<run_dir>/citadel``, with Citadel's root) and
writes each agent a fresh single-use token (0600) just before the agent starts.
Things the user should know (no Redis, a MeshConfig Mixer cannot serve) are in
:attr:`Mesh.notes` and reported as the mesh starts.

Galley, Pilot, Citadel and Mixer's HTTP side bind free ports at their first start and
keep them; ports the launcher picks come from a :class:`~cli.launcher.ports.PortPicker`.
Every child gets the kernel's parent-death signal, so none outlives the process that
owns the mesh. Logs go to ``<run_dir>/logs``. Not thread-safe: one owner, on the main
thread (the parent-death signal follows the thread that spawned a child).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import httpx

from cli.launcher.mesh_config import find_mesh_config, mixer_placement
from cli.launcher.mesh_options import MeshOptions
from cli.launcher.pilot_view import ProxySync, fetch_sync
from cli.launcher.ports import PortPicker, bindable
from cli.launcher.service_run import POLL_S, MeshStartError, RedisRun, ServiceRun
from cli.launcher.state import MeshState
from cli.launcher.tokens import TokenMinter
from cli.launcher.workload_run import CitadelAccess, WorkloadRun

__all__ = ["Mesh", "MeshOptions", "MeshStartError", "ServiceRun", "WorkloadRun"]

Report = Callable[[str], None]


class Mesh:
    """The whole local mesh (see the module docstring)."""

    def __init__(self, options: MeshOptions, *, report: Report | None = None) -> None:
        self.options = options
        self._report = report or (lambda _message: None)
        logs = options.run_dir / "logs"
        self._mesh_config = find_mesh_config(options.config_dir)
        self.notes: list[str] = []
        mixer_port = 0
        if options.mixer:
            placement = mixer_placement(self._mesh_config)
            mixer_port = placement.grpc_port
            self.notes += placement.notes
        endpoint_ports = {w.port for w in options.workloads.workloads if w.port is not None}
        self.picker = PortPicker(reserved=frozenset((endpoint_ports | {mixer_port}) - {0}))
        self.redis: RedisRun | None = None
        if options.mixer and options.redis:
            binary = RedisRun.find()
            if binary is None:
                self.notes.append(
                    "redis-server is not installed: Mixer runs without Redis "
                    "(memquota works; redisquota handlers cannot reach their Redis)"
                )
            else:
                self.redis = RedisRun(binary, picker=self.picker, logs=logs)
        self.galley = ServiceRun(
            "galley",
            ports={"mcp": 0, "http": 0},
            env={
                **options.env,
                "SPLITMESH_GALLEY_CONFIG_DIR": str(options.config_dir),
                "SPLITMESH_GALLEY_WEBHOOK_ENABLED": "false",
            },
            ready_path="/readyz",
            logs=logs,
        )
        self.citadel: ServiceRun | None = None
        self._minter: TokenMinter | None = None
        if options.citadel:
            self.citadel = ServiceRun(
                "citadel",
                ports={"grpc": 0, "http": 0},
                env={
                    **options.env,
                    "SPLITMESH_CITADEL_STATE_DIR": str(self.citadel_state_dir),
                    "SPLITMESH_CITADEL_TRUST_DOMAIN": self.trust_domain,
                },
                ready_path="/readyz",
                logs=logs,
            )
        self.mixer: ServiceRun | None = None
        if options.mixer:
            self.mixer = ServiceRun(
                "mixer",
                ports={"grpc": mixer_port, "http": 0},
                env=options.env,
                ready_path="/readyz",
                logs=logs,
            )
        self.pilot = ServiceRun(
            "pilot", ports={"grpc": 0, "http": 0}, env=options.env, ready_path="/ready", logs=logs
        )
        self.workloads = {
            workload.name: WorkloadRun(workload, options=options, picker=self.picker)
            for workload in options.workloads.workloads
        }
        self._stopped = False

    @property
    def citadel_state_dir(self) -> Path:
        """Citadel's root and the launcher's token signing key live here."""
        return self.options.run_dir / "citadel"

    @property
    def trust_domain(self) -> str:
        """The MeshConfig's ``trustDomain``: Citadel's, and every workload identity's."""
        return self._mesh_config.spec.trust_domain

    def start(self) -> None:
        """Start everything in order, gated on readiness; roll back and raise on failure."""
        timeout = self.options.start_timeout_s
        try:
            for note in self.notes:
                self._report(note)
            self._start_control_plane(timeout)
            self._report(f"starting {len(self.workloads)} apps")
            for run in self.workloads.values():
                run.start_app()
            deadline = time.monotonic() + timeout
            for run in self.workloads.values():
                run.wait_app(deadline)
            self._report(f"starting {len(self.workloads)} sidecars")
            citadel = self._write_tokens()
            for run in self.workloads.values():
                run.start_agent(self.pilot.ports["grpc"], citadel)
            deadline = time.monotonic() + timeout
            for run in self.workloads.values():
                run.wait_agent(deadline)
            self._report("waiting for every proxy to ACK its config")
            self.wait_in_sync(timeout)
        except BaseException:
            self.stop()
            raise

    def _start_control_plane(self, timeout: float) -> None:
        mixer_port = 0 if self.mixer is None else self.mixer.ports["grpc"]
        if mixer_port and not bindable(mixer_port):  # say so before starting anything
            raise MeshStartError(
                f"Mixer's port {mixer_port} (mixerCheckServer in {self._mesh_config.source}) "
                "is in use: stop what listens there or name another port in the MeshConfig"
            )
        if self.redis is not None:
            self._report("starting Redis")
            self.redis.start(timeout)
        self._report("starting Galley")
        self.galley.start(timeout)
        galley = f"127.0.0.1:{self.galley.ports['mcp']}"
        if self.citadel is not None:
            self._report("starting Citadel")
            # The signing key must exist before Citadel starts: it verifies with its half.
            self._minter = TokenMinter(self.citadel_state_dir, trust_domain=self.trust_domain)
            self.citadel.start(timeout)
        if self.mixer is not None:
            self._start_mixer(galley, timeout)
        self.pilot.env["SPLITMESH_PILOT_GALLEY_ADDRESS"] = galley
        self._report("starting Pilot")
        self.pilot.start(timeout)

    def _start_mixer(self, galley: str, timeout: float) -> None:
        assert self.mixer is not None
        port = self.mixer.ports["grpc"]
        self.mixer.env["SPLITMESH_MIXER_GALLEY_ADDRESS"] = galley
        if self.redis is not None:
            self.mixer.env["SPLITMESH_MIXER_REDIS_URL"] = self.redis.url
        self._report("starting Mixer" + (f" on port {port}" if port else ""))
        self.mixer.start(timeout)

    def _write_tokens(self) -> CitadelAccess | None:
        """With Citadel, a fresh token per workload, and where the agents find Citadel."""
        if self.citadel is None or self._minter is None:
            return None
        for run in self.workloads.values():
            self._minter.write(
                run.token_file,
                namespace=run.workload.namespace,
                service_account=run.workload.service_account,
            )
        return CitadelAccess(
            address=f"127.0.0.1:{self.citadel.ports['grpc']}", trust_domain=self.trust_domain
        )

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
            time.sleep(POLL_S)

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
        for service in (self.pilot, self.mixer, self.citadel, self.galley, self.redis):
            if service is not None:
                service.stop()

    def state(self, status: Literal["starting", "running"], launcher_pid: int) -> MeshState:
        """The mesh as ``state.json`` records it."""
        services = (self.redis, self.galley, self.citadel, self.mixer, self.pilot)
        return MeshState(
            launcher_pid=launcher_pid,
            status=status,
            run_dir=self.options.run_dir.resolve(),
            config_dir=self.options.config_dir.resolve(),
            delta=self.options.delta,
            components=(
                *(service.state() for service in services if service is not None),
                *(run.state() for run in self.workloads.values()),
            ),
            notes=tuple(self.notes),
        )


def _sync_problem(proxy: ProxySync | None) -> str | None:
    if proxy is None:
        return "not connected to Pilot"
    if proxy.in_sync:
        return None
    return proxy.last_nack or f"has not ACKed version {proxy.version}"
