"""The mesh's control-plane processes: our services (:class:`ServiceRun`) and Redis.

:class:`ServiceRun` runs ``python -m services.<kind>`` (Galley, Citadel, Mixer or Pilot)
with ``SPLITMESH_<KIND>_*`` settings. It binds the ports it is given (0: the service picks
free ones and reports them in its ports file) and keeps what it first bound, so one
restarted with :meth:`ServiceRun.restart` comes back where the others expect it.
:meth:`ServiceRun.start` returns once the ports file appeared and the ready path answers
200. :class:`RedisRun` runs Debian's ``redis-server`` (in memory only, loopback only) on a
port from the mesh's :class:`~cli.launcher.ports.PortPicker`, ready once it answers PING.

Every child gets the kernel's parent-death signal (:class:`shared.process.ServiceProcess`),
so none outlives the thread that started it. Start failures raise
:class:`MeshStartError` quoting the child's log. Not thread-safe: one owner.
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

import httpx

from cli.launcher.ports import PortPicker
from cli.launcher.state import ComponentState
from shared.process import ProcessStartError, ServiceProcess, python_module

POLL_S = 0.05
STOP_GRACE_S = 10.0
_HTTP_TIMEOUT_S = 2.0
_REDIS_TRIES = 3

ServiceKind = Literal["galley", "citadel", "mixer", "pilot"]


class MeshStartError(RuntimeError):
    """A component did not start; everything started before it was stopped."""


class ServiceRun:
    """One of our services as a child process; it keeps the ports it first bound."""

    def __init__(
        self,
        kind: ServiceKind,
        *,
        ports: Mapping[str, int],
        env: Mapping[str, str],
        ready_path: str,
        logs: Path,
    ) -> None:
        """``ports`` by name (``grpc``, ``http``, ``mcp``); 0 lets the service choose."""
        self.kind = kind
        self.ports = dict(ports)
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
        wait_until(lambda: http_ok(self.url(self._ready_path)), deadline, self.kind, process)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after a grace period; the exit code. Idempotent."""
        process, self._process = self._process, None
        return None if process is None else process.stop(STOP_GRACE_S)

    def restart(self, timeout_s: float) -> None:
        """Stop and start again on the same ports."""
        self.stop()
        self.start(timeout_s)

    def state(self) -> ComponentState:
        """This service in ``state.json``."""
        return ComponentState(
            name=self.kind, kind=self.kind, pid=self.pid, ports=self.ports, log=self._log
        )


class RedisRun:
    """``redis-server`` for Mixer's quotas: no persistence, loopback only."""

    def __init__(self, binary: str, *, picker: PortPicker, logs: Path) -> None:
        self._binary = binary
        self._picker = picker
        self._log = logs / "redis.log"
        self.port = 0
        self._process: ServiceProcess | None = None

    @staticmethod
    def find() -> str | None:
        """The ``redis-server`` on PATH, if any."""
        return shutil.which("redis-server")

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>`` (valid once started)."""
        return f"redis://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The pid while running."""
        process = self._process
        return process.pid if process is not None and process.running() else None

    def start(self, timeout_s: float) -> None:
        """Start on a fresh port and wait for PING; a port lost to a race is retried."""
        deadline = time.monotonic() + timeout_s
        for attempt in range(_REDIS_TRIES):
            self.port = self._picker.pick()
            argv = [self._binary, "--save", "", "--appendonly", "no"]
            argv += ["--bind", "127.0.0.1", "--port", str(self.port)]
            process = ServiceProcess(argv, log_path=self._log)
            self._process = process
            process.start()
            try:
                wait_until(lambda: _redis_pong(self.port), deadline, "redis", process)
            except MeshStartError:
                process.stop(STOP_GRACE_S)
                if attempt == _REDIS_TRIES - 1 or time.monotonic() > deadline:
                    raise
            else:
                return

    def stop(self) -> None:
        """SIGTERM (Redis exits at once without persistence). Idempotent."""
        process, self._process = self._process, None
        if process is not None:
            process.stop(STOP_GRACE_S)

    def state(self) -> ComponentState:
        """Redis in ``state.json``."""
        return ComponentState(
            name="redis", kind="redis", pid=self.pid, ports={"redis": self.port}, log=self._log
        )


def wait_until(
    ready: Callable[[], bool], deadline: float, what: str, process: ServiceProcess
) -> None:
    """Poll ``ready`` until it holds; raise if ``process`` exits or ``deadline`` passes."""
    while not ready():
        if not process.running():
            raise MeshStartError(f"{what} exited: {process.log_tail()}")
        if time.monotonic() > deadline:
            raise MeshStartError(f"{what} not ready in time: {process.log_tail()}")
        time.sleep(POLL_S)


def http_ok(url: str) -> bool:
    """Whether ``url`` answers 200."""
    try:
        return httpx.get(url, timeout=_HTTP_TIMEOUT_S).status_code == 200
    except httpx.HTTPError:
        return False


def accepts(port: int) -> bool:
    """Whether something accepts TCP connections on ``127.0.0.1:port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=_HTTP_TIMEOUT_S):
            return True
    except OSError:
        return False


def _redis_pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=_HTTP_TIMEOUT_S) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False
