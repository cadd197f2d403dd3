"""Config propagation through the mesh: a file change until all 10 sidecars ACK it.

Galley, Pilot and 10 workloads (the demo app, its agent and a real Envoy each, over
state-of-the-world ADS) run as local processes (:class:`bench.pilot_mesh.BenchMesh`).
Each of 20 changes rewrites ``routes.yaml`` with a new timeout on app-0's default route
(every sidecar sees app-0, so it is a full push to all of them), one change at a time, and
times it from the file's rename until Pilot's ``/debug/syncz`` shows every sidecar in sync
at the new version. syncz is polled every 10 ms, so a figure may be up to one poll late.

Debounce settings: Galley's store and Pilot's push debounce are each 100 ms with quiet =
max, so a single change waits exactly 100 ms in each; the target is p50 ≤ 100 + 100 +
50 ms. Galley's directory watcher adds a fixed delay of its own that the target does not
count (watchfiles reports a change once 50 ms passed without another event).

The stages show where the time goes: write → Galley published (Galley's log, millisecond
resolution), → Pilot released the push (syncz ``released_at``), → every sidecar ACKed.
Also reported: the CPU seconds Galley and Pilot used per change (``/proc/<pid>/stat``).
Quick mode: 2 sidecars, 2 changes, 20 ms debounces.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench import procstat
from bench.pilot_mesh import (
    BenchMesh,
    Debounce,
    app_workloads,
    endpoint_ports,
    median_target_figures,
    routes,
    service_entries,
)
from bench.registry import Benchmark, RunContext
from bench.results import Figure, Result, Target, percentile_figures
from cli.launcher.pilot_view import parse_sync
from shared.config import kinds_by_name

VIRTUAL_SERVICES = kinds_by_name()["VirtualService"].collection
_POLL_S = 0.01
_GAP_S = 0.05  # pause after each change, so changes never share a debounce window
_BASE_TIMEOUT_MS = 1000


@dataclass(frozen=True, slots=True)
class Setup:
    """Sidecars, changes, debounces and the time limit per change."""

    sidecars: int
    changes: int
    debounce: Debounce
    timeout_s: float = 60.0


@dataclass(frozen=True, slots=True)
class Sample:
    """One change, wall-clock seconds; a stage is None when it could not be timed."""

    total_s: float
    published_s: float | None
    released_s: float | None


_FULL = Setup(sidecars=10, changes=20, debounce=Debounce(galley_s=0.1, pilot_s=0.1))
_QUICK = Setup(sidecars=2, changes=2, debounce=Debounce(galley_s=0.02, pilot_s=0.02))


def run(context: RunContext) -> Result:
    """Start the mesh, make the changes one at a time, report the figures."""
    setup = _QUICK if context.quick else _FULL
    ports = endpoint_ports(setup.sidecars)
    files = {"services.yaml": service_entries(ports), "routes.yaml": routes(_BASE_TIMEOUT_MS)}
    with BenchMesh(
        work_dir=context.work_dir,
        files=files,
        debounce=setup.debounce,
        workloads=app_workloads(ports),
        progress=context.progress,
    ) as mesh:
        nodes = [workload.node_id for workload in mesh.mesh.workloads.values()]
        pids = {"Galley": mesh.mesh.galley.pid, "Pilot": mesh.pilot_pid()}
        cpu = {name: procstat.cpu_seconds(pid) for name, pid in pids.items() if pid is not None}
        samples = []
        for number in range(setup.changes):
            context.progress(f"change {number + 1}/{setup.changes}")
            samples.append(_change(mesh, nodes, _BASE_TIMEOUT_MS + 1 + number, setup.timeout_s))
            time.sleep(_GAP_S)
        used = {
            name: procstat.cpu_seconds(pid) - cpu[name]
            for name, pid in pids.items()
            if pid is not None
        }
    figures, notes = latency_figures(samples, setup.debounce)
    figures += [
        Figure(f"{name} CPU per change", seconds / setup.changes * 1000, "ms")
        for name, seconds in used.items()
    ]
    return Result(
        benchmark=BENCHMARK.name,
        figures=tuple(figures),
        parameters={
            "sidecars": setup.sidecars,
            "changes": setup.changes,
            "galley_debounce_s": setup.debounce.galley_s,
            "pilot_debounce_s": setup.debounce.pilot_s,
            "xds": "sotw",
            "syncz_poll_ms": _POLL_S * 1000,
        },
        notes=tuple(notes),
    )


def latency_figures(
    samples: Sequence[Sample], debounce: Debounce
) -> tuple[list[Figure], list[str]]:
    """The end-to-end figures (target on p50) and the stages, in ms; notes on stages left out."""
    debounces_ms = (debounce.galley_s + debounce.pilot_s) * 1000
    total = [sample.total_s * 1000 for sample in samples]
    figures = median_target_figures(
        "write → all sidecars ACKed", total, "ms", Target("<=", debounces_ms + 50)
    )
    figures += percentile_figures(
        "beyond both debounces", [value - debounces_ms for value in total], "ms"
    )
    stages: list[tuple[str, Callable[[Sample], float | None]]] = [
        ("stage: write → Galley published", lambda s: s.published_s),
        (
            "stage: Galley published → Pilot released",
            lambda s: (
                None
                if s.released_s is None or s.published_s is None
                else s.released_s - s.published_s
            ),
        ),
        (
            "stage: Pilot released → all ACKed",
            lambda s: None if s.released_s is None else s.total_s - s.released_s,
        ),
    ]
    notes = []
    for label, stage in stages:
        values = [stage(sample) for sample in samples]
        known = [value * 1000 for value in values if value is not None]
        if len(known) != len(values):
            notes.append(f"{label}: left out, a timestamp was missing for some change")
            continue
        figures += percentile_figures(label, known, "ms")
    return figures, notes


def _change(mesh: BenchMesh, nodes: Sequence[str], timeout_ms: int, limit_s: float) -> Sample:
    """Change app-0's timeout and wait until every node ACKed the new version."""
    before = mesh.syncz()["version"]
    written = mesh.write("routes.yaml", routes(timeout_ms))
    started = time.monotonic()
    while True:
        page = mesh.syncz()
        done = time.monotonic()
        if page["version"] != before and _all_acked(page, nodes):
            break
        if done - started > limit_s:
            raise TimeoutError(f"sidecars not in sync {limit_s} s after a change: {page}")
        time.sleep(_POLL_S)
    published = mesh.galley_publish_after(written, VIRTUAL_SERVICES)
    released = page.get("released_at")
    return Sample(
        total_s=done - started,
        published_s=None if published is None else max(0.0, published - written),
        released_s=None if not isinstance(released, float) else released - written,
    )


def _all_acked(page: dict[str, object], nodes: Sequence[str]) -> bool:
    proxies = parse_sync(page)
    version = page["version"]
    return all(
        (proxy := proxies.get(node)) is not None and proxy.in_sync and proxy.version == version
        for node in nodes
    )


BENCHMARK = Benchmark(
    name="pilot-propagation",
    summary="file change → all 10 Envoy sidecars ACK it (target p50 ≤ debounces + 50 ms)",
    run=run,
)
