"""One splitmesh service as a real child process, for the integration tests of any package.

:class:`ServiceUnderTest` runs ``python -m services.<name>`` with the test's environment
plus a ports file, waits until the service has written its ports, and offers what the
tests read from a running service: its addresses, admin HTTP GETs, ``/debug`` pages,
summed Prometheus samples, a wait for an admin path to answer 200, and the end of its log.
It can be stopped (SIGTERM; the exit code is recorded in
:attr:`ServiceUnderTest.exit_codes`, since a graceful stop is behaviour) and started again
on the same ports. Everything binds 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from shared.process import ServiceProcess, python_module

HTTP_TIMEOUT_S = 10.0
START_TIMEOUT_S = 30.0
WAIT_S = 15.0


class ServiceUnderTest:
    """One service child process (``python -m services.<name>``); restartable.

    ``label`` names its log and ports files in ``workdir`` (default: ``name``), so several
    instances of one service can share a directory.
    """

    def __init__(
        self, name: str, *, workdir: Path, env: Mapping[str, str], label: str | None = None
    ) -> None:
        self.name = name
        self.label = label or name
        self.workdir = workdir
        self._env = dict(env)
        self._process: ServiceProcess | None = None
        self.ports: dict[str, int] = {}
        self.exit_codes: list[int | None] = []

    @property
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self._process is not None and self._process.running()

    def start(self, *, reuse_ports: bool = False) -> dict[str, int]:
        """Start the service and wait for its ports file; ``reuse_ports`` binds the old ports."""
        if self.running:
            raise RuntimeError(f"{self.label} is already running")
        prefix = f"SPLITMESH_{self.name.upper()}_"
        ports_file = self.workdir / f"{self.label}-ports.json"
        env = {**self._env, f"{prefix}PORTS_FILE": str(ports_file)}
        if reuse_ports:
            env.update({f"{prefix}{port.upper()}_PORT": str(n) for port, n in self.ports.items()})
        self._process = ServiceProcess(
            python_module(f"services.{self.name}"),
            log_path=self.workdir / f"{self.label}.log",
            env=env,
            ports_file=ports_file,
        )
        self._process.start()
        self.ports = self._process.wait_ready(START_TIMEOUT_S)
        return self.ports

    def stop(self) -> int | None:
        """SIGTERM and wait; the exit code (also kept in :attr:`exit_codes`). Idempotent."""
        process, self._process = self._process, None
        if process is None:
            return None
        code = process.stop()
        self.exit_codes.append(code)
        return code

    def address(self, port: str) -> str:
        """``127.0.0.1:<port>`` of a named port (``grpc``, ``mcp``)."""
        return f"127.0.0.1:{self.ports[port]}"

    def get(self, path: str) -> httpx.Response:
        """GET ``path`` on the admin HTTP port."""
        return httpx.get(f"http://127.0.0.1:{self.ports['http']}{path}", timeout=HTTP_TIMEOUT_S)

    def debug(self, page: str) -> Any:
        """The JSON of ``/debug/<page>``."""
        response = self.get(f"/debug/{page}")
        response.raise_for_status()
        return response.json()

    def metric(self, sample: str, **labels: str) -> float:
        """The sum of the ``/metrics`` samples named ``sample`` whose labels include ``labels``."""
        response = self.get("/metrics")
        response.raise_for_status()
        return sum(
            found.value
            for family in text_string_to_metric_families(response.text)
            for found in family.samples
            if found.name == sample and labels.items() <= found.labels.items()
        )

    async def wait_ok(self, path: str) -> None:
        """Poll ``path`` until it answers 200 (up to :data:`WAIT_S`)."""
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while (status := self.get(path).status_code) != 200:
            assert asyncio.get_running_loop().time() < deadline, f"{self.name} {path}: {status}"
            await asyncio.sleep(0.05)

    def log_text(self) -> str:
        """Everything the service logged (stdout and stderr of every run)."""
        try:
            return (self.workdir / f"{self.label}.log").read_text(errors="replace")
        except OSError:
            return "<no log>"

    def log_tail(self) -> str:
        """The end of the service's log, for failure messages."""
        return "\n".join(self.log_text().splitlines()[-30:])
