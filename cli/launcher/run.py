"""Bring a local mesh up in the foreground or detached, and bring a detached one down.

- :func:`run_foreground` starts a :class:`~cli.launcher.mesh.Mesh`, records it in
  ``<run_dir>/state.json`` and serves until Ctrl-C or SIGTERM, then stops everything in
  reverse order and removes the state file. A second signal during the stop is ignored
  (children die with this process anyway, by the kernel's parent-death signal).
- :func:`start_detached` runs the same thing as a new session
  (``python -m cli.launcher``, output in ``<run_dir>/launcher.log``) and returns once the
  state file says ``running``; the mesh then outlives the command.
- :func:`stop_mesh` SIGTERMs the launcher named in the state file and waits for it.

Errors are :class:`LauncherError` with a message for the user. Call from the main thread.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.status import Status

from cli.launcher.mesh import Mesh, MeshOptions, MeshStartError
from cli.launcher.state import MeshState, pid_alive, read_state, remove_state, write_state
from cli.launcher.views import status_tables

LAUNCHER_LOG = "launcher.log"
_POLL_S = 0.1
_WATCH_S = 1.0


class LauncherError(RuntimeError):
    """The mesh could not be brought up or down; the message says why."""


def check_not_running(run_dir: Path) -> None:
    """Raise if a mesh recorded in ``run_dir`` still runs; clear a stale state file."""
    state = read_state(run_dir)
    if state is None:
        return
    if state.launcher_alive():
        raise LauncherError(
            f"a mesh is already running from {run_dir} (launcher pid {state.launcher_pid}); "
            "stop it with `splitmesh down`"
        )
    remove_state(run_dir)


def run_foreground(options: MeshOptions, console: Console) -> None:
    """Start the mesh, serve until a signal, stop it (see the module docstring)."""
    run_dir = options.run_dir
    check_not_running(run_dir)
    for old in ("logs", "sidecars"):
        shutil.rmtree(run_dir / old, ignore_errors=True)
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    mesh: Mesh | None = None
    try:
        with console.status("starting the mesh") as progress:
            mesh = Mesh(options, report=lambda message: _progress(console, progress, message))
            write_state(run_dir, mesh.state("starting", os.getpid()))
            mesh.start()
        state = mesh.state("running", os.getpid())
        write_state(run_dir, state)
        for table in status_tables(state):
            console.print(table)
        console.print(f"[green]mesh is up[/]; logs in {run_dir / 'logs'}")
        _watch(mesh, console)
    except KeyboardInterrupt:
        console.print("stopping the mesh")
    except MeshStartError as exc:
        raise LauncherError(str(exc)) from exc
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
        if mesh is not None:
            mesh.stop()
        remove_state(run_dir)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, previous)


def _progress(console: Console, progress: Status, message: str) -> None:
    console.log(message)
    progress.update(message)


def _watch(mesh: Mesh, console: Console) -> None:
    """Serve until interrupted, saying when a process of the mesh dies."""
    reported: set[str] = set()
    while True:
        time.sleep(_WATCH_S)
        for component in mesh.state("running", os.getpid()).components:
            pids = [component.pid] + ([component.app_pid] if component.app_log else [])
            if component.name not in reported and any(
                pid is None or not pid_alive(pid) for pid in pids
            ):
                reported.add(component.name)
                console.print(f"[red]{component.name} stopped; see {component.log}[/]")


def start_detached(
    args: Sequence[str], run_dir: Path, console: Console, timeout_s: float
) -> MeshState:
    """Run ``python -m cli.launcher ARGS`` in a new session and wait until it runs."""
    check_not_running(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / LAUNCHER_LOG
    # posix_spawn, not Popen: the launcher is meant to outlive this process unwaited.
    pid = os.posix_spawn(
        sys.executable,
        [sys.executable, "-m", "cli.launcher", *args],
        {**os.environ, "COLUMNS": "120"},
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log_path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
    )
    deadline = time.monotonic() + timeout_s
    with console.status("starting the mesh") as progress:
        while True:
            state = read_state(run_dir)
            if state is not None and state.launcher_pid == pid and state.status == "running":
                return state
            if os.waitpid(pid, os.WNOHANG) != (0, 0):
                raise LauncherError(f"the mesh did not start:\n{_tail(log_path)}")
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGTERM)
                raise LauncherError(f"the mesh did not start in {timeout_s}s:\n{_tail(log_path)}")
            lines = _tail(log_path, 1)
            if lines:
                progress.update(lines)
            time.sleep(_POLL_S)


def stop_mesh(run_dir: Path, timeout_s: float = 60.0) -> MeshState | None:
    """Stop the mesh recorded in ``run_dir``; return its state, or None if there was none."""
    state = read_state(run_dir)
    if state is None:
        return None
    if state.launcher_alive():
        os.kill(state.launcher_pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while state.launcher_alive():
            if time.monotonic() > deadline:
                os.kill(state.launcher_pid, signal.SIGKILL)
                break
            time.sleep(_POLL_S)
    remove_state(run_dir)
    pids = {
        pid: component.name
        for component in state.components
        for pid in (component.pid, component.app_pid)
        if pid is not None
    }
    deadline = time.monotonic() + timeout_s
    while left := [f"{name} (pid {pid})" for pid, name in pids.items() if pid_alive(pid)]:
        if time.monotonic() > deadline:
            raise LauncherError(f"still running after the launcher stopped: {', '.join(left)}")
        time.sleep(_POLL_S)
    return state


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])
