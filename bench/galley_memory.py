"""Galley's footprint: memory serving 10,000 objects to 10 subscribers, CPU per push.

First an empty Galley (no config, no subscribers) gives the baseline resident memory of
the process (its imports). Then Galley runs on a generated tree of 10,000 objects
(:class:`bench.galley_harness.GalleyUnderTest`) and 10 MCP subscribers sync every
collection; its resident memory is read from ``/proc/<pid>/status``: ``VmRSS`` (held to
the target, ≤ 150 MB, where 1 MB = 10^6 bytes) and ``VmHWM`` (the peak so far, start-up
included), and the memory per object above the baseline is derived. Then one
application's file is changed 20 times; reported are the CPU seconds Galley used
meanwhile (``/proc/<pid>/stat`` utime + stime, all threads) per 1000 pushes the
subscribers received and per change, the end-to-end latency at this size, and ``VmRSS``
again (growth would mean a leak). Also: start-up (spawn to serving, which includes
reading and validating every file), and the time and the CPU (Galley's, and the
subscribers' in this process) the initial sync took.
Quick mode: 100 objects, 2 subscribers, 2 changes.
"""

from __future__ import annotations

import asyncio

from bench import procstat
from bench.galley_harness import GalleySetup, GalleyUnderTest, PropagationRun
from bench.galley_propagation import cpu_figures
from bench.registry import Benchmark, RunContext
from bench.results import Figure, Result, Target, percentile_figures

TARGET_RSS_MB = Target("<=", 150)
_MB = 1_000_000
_FULL = GalleySetup(objects=10_000, subscribers=10, debounce_s=0.1)
_QUICK = GalleySetup(objects=100, subscribers=2, debounce_s=0.02, timeout_s=60)
_CHANGES, _QUICK_CHANGES = 20, 2


def run(context: RunContext) -> Result:
    """Measure the baseline, then Galley's memory once synced and its CPU over the changes."""
    setup = _QUICK if context.quick else _FULL
    changes = _QUICK_CHANGES if context.quick else _CHANGES
    empty = GalleySetup(objects=0, subscribers=0, debounce_s=setup.debounce_s)

    async def baseline() -> int:
        async with GalleyUnderTest(
            empty, work_dir=context.work_dir / "empty", progress=context.progress
        ) as galley:
            return procstat.memory(galley.pid).rss

    async def measure(base: int) -> tuple[list[Figure], PropagationRun]:
        async with GalleyUnderTest(
            setup, work_dir=context.work_dir / "served", progress=context.progress
        ) as galley:
            synced = procstat.memory(galley.pid)
            figures = [
                Figure("Galley start-up (spawn → serving)", galley.startup_s, "s"),
                Figure(f"{setup.subscribers} subscribers synced", galley.sync_s, "s"),
                Figure("Galley CPU for that sync", galley.sync_cpu_s, "s"),
                Figure("subscribers' CPU for that sync", galley.sync_bench_cpu_s, "s"),
                Figure("Galley RSS, empty (baseline)", base / _MB, "MB"),
                Figure("Galley RSS, subscribers synced", synced.rss / _MB, "MB", TARGET_RSS_MB),
                Figure("Galley peak RSS (VmHWM), subscribers synced", synced.hwm / _MB, "MB"),
                Figure("RSS above baseline per object", (synced.rss - base) / setup.objects, "B"),
            ]
            measured = await galley.propagate(changes)
            after = procstat.memory(galley.pid)
            figures.append(Figure(f"Galley RSS after {changes} changes", after.rss / _MB, "MB"))
            return figures, measured

    base = asyncio.run(baseline())
    figures, measured = asyncio.run(measure(base))
    raw = [change.raw_s * 1000 for change in measured.changes]
    figures += percentile_figures("write → all hold it", raw, "ms")
    figures += cpu_figures(measured)
    return Result(
        benchmark=BENCHMARK.name,
        figures=tuple(figures),
        parameters={
            "objects": setup.objects,
            "subscribers": setup.subscribers,
            "changes": changes,
            "store_debounce_s": setup.debounce_s,
            "pushes": measured.pushes,
        },
    )


BENCHMARK = Benchmark(
    name="galley-memory",
    summary="Galley RSS serving 10,000 objects to 10 subscribers (target ≤ 150 MB), CPU/push",
    run=run,
)
