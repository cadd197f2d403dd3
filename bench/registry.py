"""The benchmarks ``python -m bench`` knows, and what each is handed when it runs.

A benchmark is a module of this package with a module-level constant
``BENCHMARK = Benchmark(name=..., summary=..., run=...)``; its module path is listed in
:data:`MODULES` (add a line there to plug a new benchmark in: Pilot and Mixer come
later). :func:`benchmarks` imports the listed modules lazily, so importing the registry
is cheap and a benchmark's heavy imports only happen when the harness needs it.

``run(context)`` is synchronous (an async benchmark calls ``asyncio.run`` itself), owns
whatever it starts (processes, clients, files below ``context.work_dir``) and stops it
before returning or raising. It reports progress through ``context.progress`` and
returns a :class:`~bench.results.Result`; any exception means the benchmark failed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.results import Result

MODULES: tuple[str, ...] = (
    "bench.galley_validation",
    "bench.galley_propagation",
    "bench.galley_memory",
    "bench.pilot_propagation",
    "bench.pilot_scale",
    "bench.agent_start",
    "bench.citadel_signing",
    "bench.agent_cert_start",
    "bench.mtls_overhead",
    "bench.mixer_check",
    "bench.mixer_sidecar",
)
"""Every benchmark module, in the order ``python -m bench`` runs them."""


@dataclass(frozen=True, slots=True)
class RunContext:
    """What a benchmark run gets: ``quick`` (tiny sizes), a scratch directory, progress."""

    quick: bool
    work_dir: Path
    progress: Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Benchmark:
    """A named benchmark: a one-line summary and the function that runs it."""

    name: str
    summary: str
    run: Callable[[RunContext], Result]


def benchmarks() -> dict[str, Benchmark]:
    """Every registered benchmark by name, in run order.

    Raises :class:`TypeError` if a listed module lacks a :class:`Benchmark` ``BENCHMARK``
    and :class:`ValueError` if two share a name.
    """
    found: dict[str, Benchmark] = {}
    for module_name in MODULES:
        benchmark = getattr(importlib.import_module(module_name), "BENCHMARK", None)
        if not isinstance(benchmark, Benchmark):
            raise TypeError(f"{module_name} defines no BENCHMARK = Benchmark(...)")
        if benchmark.name in found:
            raise ValueError(f"two benchmarks are called {benchmark.name!r}")
        found[benchmark.name] = benchmark
    return found
