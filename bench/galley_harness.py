"""Galley as a real child process on a generated config tree, followed by MCP subscribers.

:class:`GalleyUnderTest` is an async context manager. Entering it writes
:func:`bench.workload.config_files` below ``work_dir/config``, starts
``python -m services.galley`` there through :class:`~shared.process.ServiceProcess`
(every port 0, no webhook, store debounce quiet = max = ``debounce_s``, log level debug
so the log shows when the file watcher reported a change), starts ``subscribers``
:class:`~shared.contracts.mcp.client.McpClient` sinks in this process (each subscribed
to every collection) and waits until every sink holds every collection. Leaving it stops
the clients, then Galley (SIGTERM).

:meth:`GalleyUnderTest.propagate` then rewrites one application's file ``changes`` times
(an atomic rename, as an editor saves; each time a new timeout in one VirtualService) and
measures, per change, the time from the write until every sink has accepted the new
version, split into stages with the timestamps of Galley's own log (millisecond
resolution): write → watcher reported it, reported → snapshot published, published →
every sink holds it. It also measures the CPU seconds Galley and this process used.

Why the sinks live in this process: while a change propagates this process does nothing
but run the sinks (the writer waits), so a separate load process would run the same work
on the same two cores; this process's CPU use is reported so that can be checked.

Ownership: the context owns the process, the clients and ``work_dir``'s contents; use it
from one event loop. Errors: :class:`~shared.process.ProcessStartError` if Galley does
not start, :class:`TimeoutError` (quoting Galley's log) if sinks do not sync or a change
does not arrive within ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from bench import procstat
from bench.workload import ConfigFile, config_files, render, retimed, write_file, write_tree
from shared.config import kinds_by_collection, kinds_by_name
from shared.contracts.mcp.client import McpClient, SnapshotPredicate
from shared.contracts.mcp.snapshot import CollectionSnapshot
from shared.process import ServiceProcess, python_module

VIRTUAL_SERVICES = kinds_by_name()["VirtualService"].collection
_GAP_S = 0.05  # pause after each change, so changes never share a debounce window
_LOG_SLACK_S = 0.001  # log times are truncated to the millisecond


@dataclass(frozen=True, slots=True)
class GalleySetup:
    """What to run: config size, number of sinks, store debounce, and the time limit."""

    objects: int
    subscribers: int
    debounce_s: float
    timeout_s: float = 300.0


@dataclass(frozen=True, slots=True)
class Change:
    """One propagated change, in seconds; a stage is None if Galley's log lacks its line."""

    raw_s: float
    watch_s: float | None
    publish_s: float | None
    distribute_s: float | None


@dataclass(frozen=True, slots=True)
class PropagationRun:
    """Every change, the pushes the sinks received and the CPU both sides used meanwhile."""

    changes: tuple[Change, ...]
    pushes: int
    galley_cpu_s: float
    bench_cpu_s: float
    wall_s: float


@dataclass(frozen=True, slots=True)
class _Timing:
    """One change as measured here: wall time of the write, arrival, the new version."""

    written: float
    arrived: float
    version: str


class _Sink:
    """One MCP client that remembers when it accepted each collection version."""

    def __init__(self, target: str, number: int) -> None:
        self.pushes = 0
        self.accepted_at: dict[tuple[str, str], float] = {}
        self.client = McpClient(
            target=target,
            sink_id=f"bench-sink-{number}",
            collections=list(kinds_by_collection()),
            handler=self._accept,
        )

    async def _accept(self, snapshot: CollectionSnapshot) -> None:
        self.pushes += 1
        self.accepted_at[(snapshot.collection, snapshot.version)] = time.monotonic()


class GalleyUnderTest:
    """Galley plus its sinks for one benchmark; see the module docstring.

    Once entered: ``startup_s`` is the time from spawning Galley to its ports file (it
    has read and validated every file by then), ``sync_s`` the time until every sink held
    every collection, ``sync_cpu_s`` the CPU seconds Galley used for that sync and
    ``sync_bench_cpu_s`` those this process (the sinks) used.
    """

    def __init__(
        self, setup: GalleySetup, *, work_dir: Path, progress: Callable[[str], None]
    ) -> None:
        self.setup = setup
        self._work_dir = work_dir
        self._config_dir = work_dir / "config"
        self._log_path = work_dir / "galley.log"
        self._progress = progress
        self._files: list[ConfigFile] = []
        self._process: ServiceProcess | None = None
        self._sinks: list[_Sink] = []
        self.startup_s = 0.0
        self.sync_s = 0.0
        self.sync_cpu_s = 0.0
        self.sync_bench_cpu_s = 0.0

    @property
    def pid(self) -> int:
        """Galley's process id (valid inside the context)."""
        if self._process is None or self._process.pid is None:
            raise RuntimeError("Galley is not running")
        return self._process.pid

    async def __aenter__(self) -> Self:
        try:
            await self._start()
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._stop()

    async def propagate(self, changes: int) -> PropagationRun:
        """Make ``changes`` changes one after another; see the module docstring."""
        base = next(
            f for f in self._files if any(d["kind"] == "VirtualService" for d in f.documents)
        )
        galley_cpu = procstat.cpu_seconds(self.pid)
        bench_cpu = time.process_time()
        pushes = sum(sink.pushes for sink in self._sinks)
        started = time.monotonic()
        timings = []
        for number in range(changes):
            self._progress(f"change {number + 1}/{changes}")
            # A timeout above any generated one (1-5 s), so every change is a new version.
            changed, name = retimed(base, 10_001 + number)
            timings.append(await self._change(changed, name))
            await asyncio.sleep(_GAP_S)
        wall = time.monotonic() - started
        return PropagationRun(
            changes=self._stages(timings),
            pushes=sum(sink.pushes for sink in self._sinks) - pushes,
            galley_cpu_s=procstat.cpu_seconds(self.pid) - galley_cpu,
            bench_cpu_s=time.process_time() - bench_cpu,
            wall_s=wall,
        )

    async def _start(self) -> None:
        self._progress(f"writing {self.setup.objects} objects")
        self._files = config_files(self.setup.objects)
        self._config_dir.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(write_tree, self._config_dir, self._files)
        ports_file = self._work_dir / "ports.json"
        debounce = str(self.setup.debounce_s)
        self._process = ServiceProcess(
            python_module("services.galley"),
            log_path=self._log_path,
            env={
                "SPLITMESH_GALLEY_CONFIG_DIR": str(self._config_dir),
                "SPLITMESH_GALLEY_MCP_PORT": "0",
                "SPLITMESH_GALLEY_HTTP_PORT": "0",
                "SPLITMESH_GALLEY_WEBHOOK_ENABLED": "false",
                "SPLITMESH_GALLEY_PORTS_FILE": str(ports_file),
                "SPLITMESH_GALLEY_DEBOUNCE_QUIET_S": debounce,
                "SPLITMESH_GALLEY_DEBOUNCE_MAX_S": debounce,
                "SPLITMESH_GALLEY_LOG_LEVEL": "debug",
            },
            ports_file=ports_file,
        )
        self._progress("starting Galley")
        started = time.monotonic()
        self._process.start()
        ports = await asyncio.to_thread(self._process.wait_ready, self.setup.timeout_s)
        self.startup_s = time.monotonic() - started
        self._progress(f"syncing {self.setup.subscribers} subscribers")
        target = f"127.0.0.1:{ports['mcp']}"
        self._sinks = [_Sink(target, number) for number in range(self.setup.subscribers)]
        started, cpu = time.monotonic(), procstat.cpu_seconds(self.pid)
        bench_cpu = time.process_time()
        for sink in self._sinks:
            await sink.client.start()
        for sink in self._sinks:
            for collection in kinds_by_collection():
                await self._wait(sink, collection, None)
        self.sync_s = time.monotonic() - started
        self.sync_cpu_s = procstat.cpu_seconds(self.pid) - cpu
        self.sync_bench_cpu_s = time.process_time() - bench_cpu

    async def _stop(self) -> None:
        for sink in self._sinks:
            await sink.client.stop()
        self._sinks = []
        process, self._process = self._process, None
        if process is not None:
            await asyncio.to_thread(process.stop)

    async def _change(self, changed: ConfigFile, name: str) -> _Timing:
        before = self._sinks[0].client.snapshots()[VIRTUAL_SERVICES].resources[name].version
        text = render(changed)

        def is_new(snapshot: CollectionSnapshot) -> bool:
            held = snapshot.resources.get(name)
            return held is not None and held.version != before

        written_wall, written = time.time(), time.monotonic()
        write_file(self._config_dir, changed.path, text)
        snapshots = [await self._wait(sink, VIRTUAL_SERVICES, is_new) for sink in self._sinks]
        versions = {snapshot.version for snapshot in snapshots}
        if len(versions) != 1:
            raise RuntimeError(f"sinks hold different versions after one change: {versions}")
        version = versions.pop()
        arrived = max(sink.accepted_at[(VIRTUAL_SERVICES, version)] for sink in self._sinks)
        return _Timing(written_wall, written_wall + arrived - written, version)

    async def _wait(
        self, sink: _Sink, collection: str, predicate: SnapshotPredicate | None
    ) -> CollectionSnapshot:
        try:
            return await sink.client.wait_for(collection, predicate, timeout=self.setup.timeout_s)
        except TimeoutError as exc:
            tail = "" if self._process is None else self._process.log_tail()
            raise TimeoutError(f"{exc}\nGalley's log ends:\n{tail}") from None

    def _stages(self, timings: list[_Timing]) -> tuple[Change, ...]:
        detected, published = _log_events(self._log_path)
        changes = []
        for timing in timings:
            seen = next((t for t in detected if t >= timing.written - _LOG_SLACK_S), None)
            out = published.get((VIRTUAL_SERVICES, timing.version))
            changes.append(
                Change(
                    raw_s=timing.arrived - timing.written,
                    watch_s=None if seen is None else max(0.0, seen - timing.written),
                    publish_s=None if seen is None or out is None else out - seen,
                    distribute_s=None if out is None else timing.arrived - out,
                )
            )
        return tuple(changes)


def _log_events(path: Path) -> tuple[list[float], dict[tuple[str, str], float]]:
    """Wall times in Galley's JSON log: watcher reports, and publishes by collection version."""
    detected: list[float] = []
    published: dict[tuple[str, str], float] = {}
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
            when = datetime.fromisoformat(entry["time"]).timestamp()
            message = str(entry["message"])
        except (ValueError, KeyError, TypeError):
            continue
        if entry.get("logger") == "watchfiles.main" and "detected" in message:
            detected.append(when)
        elif message.startswith("published "):
            for item in message.removeprefix("published ").split(", "):
                collection, _, rest = item.partition("@")
                published[(collection, rest.split(" ", 1)[0])] = when
    return sorted(detected), published
