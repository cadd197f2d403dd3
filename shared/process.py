"""Child processes that serve: start, wait until their ports file appears, stop cleanly.

Used by the local launcher, the integration tests and the benchmarks to run our
services (``python -m services.galley``) and helpers as real processes. A
:class:`ServiceProcess` writes the child's stdout and stderr to ``log_path``, asks the
kernel to SIGTERM the child if the thread that started it dies (no orphans on Linux), and
on :meth:`ServiceProcess.stop` sends SIGTERM, then SIGKILL after ``grace`` seconds.
Not thread-safe; one owner drives it.

The parent-death signal is set by a tiny Python trampoline that then execs the command
(same pid), never by a ``preexec_fn``: a ``preexec_fn`` forces a real ``fork()``, and in a
parent with live gRPC threads (an MCP client, say) the forked child runs gRPC's at-fork
handlers and often dies of SIGSEGV or SIGABRT before it can exec.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

# argv: parent pid, then the command. Exits 1 if the parent is already gone.
_EXEC_WITH_PARENT_DEATH_SIGNAL = """\
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)
os.execvp(sys.argv[2], sys.argv[2:])
"""


class ProcessStartError(RuntimeError):
    """The child exited or did not become ready in time; the message quotes its log."""


def python_module(module: str) -> list[str]:
    """The command that runs ``python -m module`` with this interpreter."""
    return [sys.executable, "-m", module]


class ServiceProcess:
    """One child process with a log file and an optional JSON ports file."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        ports_file: Path | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.command = list(command)
        self.log_path = log_path
        self.ports_file = ports_file
        self._env = {**os.environ, **(env or {})}
        self._cwd = cwd
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The child's pid while started."""
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Spawn the child (returns at once; see :meth:`wait_ready`)."""
        if self.ports_file is not None:
            self.ports_file.unlink(missing_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-S",
                    "-c",
                    _EXEC_WITH_PARENT_DEATH_SIGNAL,
                    str(os.getpid()),
                    *self.command,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env,
                cwd=self._cwd,
            )

    def wait_ready(self, timeout: float = 30.0) -> dict[str, int]:
        """Wait for the ports file and return it; raise :class:`ProcessStartError` if the
        child exits or the file does not appear within ``timeout`` seconds."""
        if self.ports_file is None:
            raise ProcessStartError("no ports file to wait for")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ports_file.exists():
                return {str(k): int(v) for k, v in json.loads(self.ports_file.read_text()).items()}
            if not self.running():
                raise ProcessStartError(f"{self.command[-1]} exited: {self.log_tail()}")
            time.sleep(0.02)
        raise ProcessStartError(f"{self.command[-1]} not ready after {timeout}s: {self.log_tail()}")

    def running(self) -> bool:
        """True while the child is alive."""
        return self._process is not None and self._process.poll() is None

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the child if it runs."""
        if self.running() and self._process is not None:
            self._process.send_signal(signum)

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM, wait up to ``grace`` s, then SIGKILL; return the exit code. Idempotent."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the child's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "<no log>"
        return "\n".join(text.splitlines()[-lines:])
