"""Pilot at scale: 1,000 services pushed to 100 simulated proxies, SotW and delta.

The config is the generated mesh of :mod:`bench.workload` cut at 1,000 applications
(100 namespaces; each application a ServiceEntry with 2-3 endpoints, a DestinationRule
with subsets, a VirtualService, an AuthorizationPolicy...) WITHOUT its Sidecar resources,
so every proxy sees all 1,000 services (about 3,500 clusters and as many endpoint
assignments each): the worst case, as in a mesh that does not scope its sidecars. Galley
and Pilot run as local processes (:class:`bench.pilot_mesh.BenchMesh`, no workloads); the
100 proxies are :class:`bench.ads_client.SimulatedProxy` streams in this process, one per
application of the first 10 namespaces (node metadata as the agent writes it): Pilot
generates the clusters once (every namespace sees the same services), the outbound routes
once per namespace (10 scopes) and each proxy's inbound part.

For each protocol (state of the world, then delta; Pilot is restarted in between so each
starts from the same state) the fleet connects and syncs, then 5 full pushes (a
VirtualService timeout changes) and 5 endpoint-only updates (a ServiceEntry endpoint
address changes) are made one at a time. Each is timed twice: from the file's rename
(so Galley's part is in it) and from Pilot's release of the push (syncz ``released_at``,
after its debounce), until every proxy received the last response of the new version
(receive times recorded by each client; the push counts as done once Pilot's syncz, read
only after every proxy got something of the new version, shows every proxy ACKed it).
Targets: full push ≤ 2 s and endpoint update ≤ 200 ms to all, from Pilot's release, at
p99; Pilot RSS ≤ 400 MB with the fleet synced (1 MB = 10^6 bytes).
Also reported: Pilot's CPU seconds per push and for the initial sync, and this process's
CPU (the fleet shares the machine's 2 cores with Pilot, so it can slow the figures).
Debounce: Galley 100 ms, Pilot 100 ms (quiet = max).
Quick mode: 20 services, 4 proxies, one change of each kind.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bench import procstat
from bench.ads_client import ProxyFleet, SimulatedProxy
from bench.pilot_mesh import BenchMesh, Debounce
from bench.registry import Benchmark, RunContext
from bench.results import Figure, Result, Target, percentile_figures
from bench.stats import median
from bench.workload import ConfigFile, config_files, render, retimed
from cli.launcher.pilot_view import parse_sync
from services.pilot.core.model import (
    META_INBOUND,
    META_LABELS,
    META_NAMESPACE,
    META_OUTBOUND_PORT,
    META_WORKLOAD_NAME,
    TYPE_URLS,
    node_id,
)
from shared.config import kinds_by_name

Kind = Literal["full", "endpoints"]
TARGETS: dict[Kind, Target] = {"full": Target("<=", 2000), "endpoints": Target("<=", 200)}
TARGET_RSS_MB = Target("<=", 400)
_MB = 1_000_000
_COLLECTIONS: dict[Kind, str] = {
    "full": kinds_by_name()["VirtualService"].collection,
    "endpoints": kinds_by_name()["ServiceEntry"].collection,
}
_DEBOUNCE = Debounce(galley_s=0.1, pilot_s=0.1)
_SYNCZ_POLL_S = 0.05
_DOCUMENTS_PER_APP = 6  # an upper bound of what bench.workload writes per application


@dataclass(frozen=True, slots=True)
class Setup:
    """Services, proxies, changes of each kind per protocol, and the time limit per wait."""

    services: int
    proxies: int
    changes: int
    timeout_s: float = 300.0


@dataclass(frozen=True, slots=True)
class Push:
    """One change, ms: from the write / Pilot's release to the first and the last proxy."""

    kind: Kind
    write_to_all: float
    release_to_all: float
    release_to_first: float
    write_to_published: float | None
    published_to_release: float | None
    pilot_cpu_s: float


@dataclass(frozen=True, slots=True)
class ProtocolRun:
    """One protocol's sync, footprint and pushes."""

    protocol: str
    sync_s: float
    sync_cpu_s: float
    rss: procstat.Memory
    pushes: tuple[Push, ...]
    bench_cpu_share: float


_FULL = Setup(services=1000, proxies=100, changes=5)
_QUICK = Setup(services=20, proxies=4, changes=1, timeout_s=60.0)


def run(context: RunContext) -> Result:
    """Start Galley and Pilot on the generated mesh; measure each protocol in turn."""
    setup = _QUICK if context.quick else _FULL
    files = mesh_files(setup.services)
    runs: list[ProtocolRun] = []
    numbers = itertools.count()  # every change, across protocols, writes new content
    with BenchMesh(
        work_dir=context.work_dir,
        files={file.path: render(file) for file in files},
        debounce=_DEBOUNCE,
        progress=context.progress,
    ) as mesh:
        baseline = procstat.memory(mesh.pilot_pid())
        for protocol in ("sotw", "delta"):
            if runs:
                context.progress("restarting Pilot")
                mesh.mesh.pilot.restart(mesh.mesh.options.start_timeout_s)
            measure = _Measure(mesh, files, setup, protocol, context, numbers=numbers)
            runs.append(asyncio.run(measure.run()))
    figures = [Figure("Pilot RSS, config loaded, no proxies", baseline.rss / _MB, "MB")]
    for measured in runs:
        figures += protocol_figures(measured, setup)
    return Result(
        benchmark=BENCHMARK.name,
        figures=tuple(figures),
        parameters={
            "services": setup.services,
            "proxies": setup.proxies,
            "changes_per_kind": setup.changes,
            "sidecar_scoping": False,
            "galley_debounce_s": _DEBOUNCE.galley_s,
            "pilot_debounce_s": _DEBOUNCE.pilot_s,
        },
    )


def mesh_files(services: int) -> list[ConfigFile]:
    """The generated mesh cut after ``services`` applications, without Sidecar resources."""
    kept: list[ConfigFile] = []
    count = 0
    for file in config_files(services * _DOCUMENTS_PER_APP + 10):
        if count == services:
            break
        count += sum(document["kind"] == "ServiceEntry" for document in file.documents)
        documents = tuple(d for d in file.documents if d["kind"] != "Sidecar")
        kept.append(ConfigFile(file.path, documents))
    if count != services:
        raise RuntimeError(f"the generated mesh has {count} services, wanted {services}")
    return kept


def protocol_figures(measured: ProtocolRun, setup: Setup) -> list[Figure]:
    """One protocol's figures: sync, memory, CPU, and per push kind latency in ms."""
    name = measured.protocol
    figures = [
        Figure(f"{name}: {setup.proxies} proxies connect → all synced", measured.sync_s, "s"),
        Figure(f"{name}: Pilot CPU for that sync", measured.sync_cpu_s, "s"),
        Figure(f"{name}: Pilot RSS, proxies synced", measured.rss.rss / _MB, "MB", TARGET_RSS_MB),
        Figure(f"{name}: Pilot peak RSS (VmHWM)", measured.rss.hwm / _MB, "MB"),
    ]
    for kind in ("full", "endpoints"):
        pushes = [push for push in measured.pushes if push.kind == kind]
        label = f"{name} {'full push' if kind == 'full' else 'endpoint update'}"
        figures += percentile_figures(
            f"{label}: Pilot release → all",
            [push.release_to_all for push in pushes],
            "ms",
            target_p99=TARGETS[kind],
        )
        figures.append(
            Figure(
                f"{label}: Pilot release → first, median",
                median([push.release_to_first for push in pushes]),
                "ms",
            )
        )
        figures.append(
            Figure(f"{label}: write → all, median", median([p.write_to_all for p in pushes]), "ms")
        )
        figures += _stage_medians(label, pushes)
        figures.append(
            Figure(f"{label}: Pilot CPU per push", median([p.pilot_cpu_s for p in pushes]), "s")
        )
    figures.append(
        Figure(f"{name}: bench process (fleet) CPU during pushes", measured.bench_cpu_share, "%")
    )
    return figures


def _stage_medians(label: str, pushes: Sequence[Push]) -> Iterator[Figure]:
    """Medians of write → Galley published and published → Pilot released, when known."""
    for stage, values in (
        ("write → Galley published", [p.write_to_published for p in pushes]),
        ("Galley published → Pilot released", [p.published_to_release for p in pushes]),
    ):
        known = [value for value in values if value is not None]
        if len(known) == len(values):
            yield Figure(f"{label}: {stage}, median", median(known), "ms")


class _Measure:
    """One protocol's fleet against the running Pilot: sync, then the changes."""

    def __init__(
        self,
        mesh: BenchMesh,
        files: Sequence[ConfigFile],
        setup: Setup,
        protocol: str,
        context: RunContext,
        *,
        numbers: Iterator[int],
    ) -> None:
        self._mesh = mesh
        self._numbers = numbers
        self._setup = setup
        self._protocol = protocol
        self._progress = context.progress
        apps = [file for file in files if _kinds(file) >= {"ServiceEntry", "VirtualService"}]
        self._retimed = apps[1 % len(apps)]
        self._readdressed = apps[2 % len(apps)]
        target = f"127.0.0.1:{mesh.mesh.pilot.ports['grpc']}"
        self.fleet = ProxyFleet(
            [_proxy(target, app, delta=protocol == "delta") for app in apps[: setup.proxies]]
        )
        if len(self.fleet.proxies) != setup.proxies:
            raise RuntimeError(f"only {len(self.fleet.proxies)} applications for the proxies")

    async def run(self) -> ProtocolRun:
        pid = self._mesh.pilot_pid()
        try:
            self._progress(f"{self._protocol}: connecting {self._setup.proxies} proxies")
            started, cpu = time.monotonic(), procstat.cpu_seconds(pid)
            await self.fleet.start()
            version = await self._initial_sync(started + self._setup.timeout_s)
            sync_s, sync_cpu = time.monotonic() - started, procstat.cpu_seconds(pid) - cpu
            rss = procstat.memory(pid)
            pushes = []
            wall, bench_cpu = time.monotonic(), time.process_time()
            for number in range(self._setup.changes):
                for kind in ("full", "endpoints"):
                    self._progress(f"{self._protocol}: {kind} change {number + 1}")
                    push, version = await self._push(kind, next(self._numbers), version)
                    pushes.append(push)
            share = (time.process_time() - bench_cpu) / (time.monotonic() - wall) * 100
        finally:
            await self.fleet.stop()
        return ProtocolRun(self._protocol, sync_s, sync_cpu, rss, tuple(pushes), share)

    async def _initial_sync(self, deadline: float) -> str:
        """Wait until every proxy holds every type and Pilot sees them all in sync."""
        page = await self._synced(None, deadline)
        version = str(page["version"])
        timeout = max(0.0, deadline - time.monotonic())
        # Pilot may see a proxy in sync for a moment before it subscribes to RDS names.
        await self.fleet.wait_for_version(version, TYPE_URLS, timeout)
        await self._synced(version, deadline)
        return version

    async def _push(self, kind: Kind, number: int, old: str) -> tuple[Push, str]:
        """Make one change from version ``old``; time it from the write and from the release.

        Returns the push and the new version.
        """
        pid = self._mesh.pilot_pid()
        marks = [len(proxy.history) for proxy in self.fleet.proxies]
        cpu = procstat.cpu_seconds(pid)
        path, text = self._changed(kind, number)
        written_wall = self._mesh.write(path, text)
        written = time.monotonic()
        first = self.fleet.proxies[0]
        await first.wait_for(
            lambda p: any(r.version != old for r in p.history[marks[0] :]), self._setup.timeout_s
        )
        version = next(r.version for r in first.history[marks[0] :] if r.version != old)
        # Every proxy got something of the new version; then (polling little) Pilot says
        # each ACKed all of it. Arrival times come from the clients, not from the polls.
        await asyncio.gather(
            *(
                proxy.wait_for(_received(version, mark), self._setup.timeout_s)
                for proxy, mark in zip(self.fleet.proxies, marks, strict=True)
            )
        )
        page = await self._synced(version, written + self._setup.timeout_s)
        pilot_cpu = procstat.cpu_seconds(pid) - cpu
        arrivals = [
            max(r.at for r in proxy.history[mark:] if r.version == version)
            for proxy, mark in zip(self.fleet.proxies, marks, strict=True)
        ]

        def local(wall: float) -> float:  # a wall-clock time on this process's monotonic clock
            return written + wall - written_wall

        released = local(float(page["released_at"]))
        published = self._mesh.galley_publish_after(written_wall, _COLLECTIONS[kind])
        galley = None if published is None else local(published)
        push = Push(
            kind=kind,
            write_to_all=(max(arrivals) - written) * 1000,
            release_to_all=(max(arrivals) - released) * 1000,
            release_to_first=(min(arrivals) - released) * 1000,
            write_to_published=None if galley is None else (galley - written) * 1000,
            published_to_release=None if galley is None else (released - galley) * 1000,
            pilot_cpu_s=pilot_cpu,
        )
        return push, version

    def _changed(self, kind: Kind, number: int) -> tuple[str, str]:
        """The file to write for change ``number`` of ``kind``, and its text."""
        if kind == "full":
            changed, _ = retimed(self._retimed, 20_000 + number)
        else:
            changed = _readdressed(self._readdressed, number)
        return changed.path, render(changed)

    async def _synced(self, version: str | None, deadline: float) -> dict[str, Any]:
        """Poll syncz until every proxy is in sync (at ``version`` when given)."""
        nodes = [proxy.node_id for proxy in self.fleet.proxies]
        while True:
            page = await asyncio.to_thread(self._mesh.syncz)
            current = page.get("version")
            proxies = parse_sync(page)
            if (version is None or current == version) and all(
                (proxy := proxies.get(node)) is not None
                and proxy.in_sync
                and proxy.version == current
                for node in nodes
            ):
                return page
            if time.monotonic() > deadline:
                lagging = [node for node in nodes if not proxies.get(node)]
                raise TimeoutError(
                    f"{self._protocol}: proxies not in sync at {version or current}; "
                    f"{len(lagging)} not connected"
                )
            await asyncio.sleep(_SYNCZ_POLL_S)


def _received(version: str, mark: int) -> Callable[[SimulatedProxy], bool]:
    """Whether a proxy received a response of ``version`` after its ``mark``-th."""
    return lambda proxy: any(r.version == version for r in proxy.history[mark:])


def _kinds(file: ConfigFile) -> set[str]:
    return {document["kind"] for document in file.documents}


def _proxy(target: str, app: ConfigFile, *, delta: bool) -> SimulatedProxy:
    """A sidecar of the application of ``app``, described as the agent describes it."""
    entry = next(d for d in app.documents if d["kind"] == "ServiceEntry")
    name, namespace = entry["metadata"]["name"], entry["metadata"]["namespace"]
    return SimulatedProxy(
        target=target,
        node_id=node_id("sidecar", "127.0.0.1", name, namespace),
        metadata={
            META_NAMESPACE: namespace,
            META_WORKLOAD_NAME: name,
            META_LABELS: {"app": name, "version": "v1"},
            META_OUTBOUND_PORT: 15001,
            META_INBOUND: [{"port": 8080, "app_port": 18080, "service": entry["spec"]["hosts"][0]}],
        },
        delta=delta,
    )


def _readdressed(file: ConfigFile, number: int) -> ConfigFile:
    """``file`` with its ServiceEntry's first endpoint at a new address (``number`` picks it)."""
    documents = [copy.deepcopy(document) for document in file.documents]
    entry = next(d for d in documents if d["kind"] == "ServiceEntry")
    entry["spec"]["endpoints"][0]["address"] = f"10.250.{number // 250}.{number % 250 + 1}"
    return ConfigFile(file.path, tuple(documents))


BENCHMARK = Benchmark(
    name="pilot-scale",
    summary="1,000 services, 100 ADS proxies: full push ≤ 2 s, endpoint update ≤ 200 ms, RSS",
    run=run,
)
