"""Galley validation throughput: generated Istio YAML in, validated objects out, per second.

Three measurements over the same generated mesh (:mod:`bench.workload`, 10,000 objects
of every kind, ~24 lines each, grouped into files as a real tree would be):

- ``file``: what the directory source does per file: :func:`shared.config.parse_yaml` on
  the file's bytes, then :func:`services.galley.core.validation.validate` on each object.
  This is the figure held to the target (≥ 5,000 objects/s).
- ``decoded``: :func:`shared.config.parse_object` + ``validate`` on already-decoded
  documents (what the webhook does with an AdmissionReview's JSON object).
- ``validate``: ``validate`` alone on typed resources.

Each is timed over the whole set several times in this process (garbage collected
before each run); each figure is the median run. Rates are objects per CPU second of
this process (``time.process_time``): the work is single-threaded and CPU-bound, so on
an idle core that equals the wall-clock rate, and on a shared machine it leaves out the
time other processes held the core. The target applies to it; the wall-clock rate of the
``file`` path is reported beside it. Every object must be accepted: a
generated object that fails validation is a :class:`RuntimeError` (a broken workload,
not a slow one). Single-threaded, like Galley's own parsing.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.registry import Benchmark, RunContext
from bench.results import Figure, Result, Target
from bench.stats import median
from bench.workload import config_files, render
from services.galley.core.validation import validate
from shared.config import Resource, has_errors, parse_object, parse_yaml

TARGET = Target(">=", 5000)
_UNIT = "objects/s"


@dataclass(frozen=True, slots=True)
class _Size:
    objects: int
    runs: int


_FULL = _Size(objects=10_000, runs=5)
_QUICK = _Size(objects=200, runs=2)


def run(context: RunContext) -> Result:
    """Time the three paths (see the module docstring) and report objects per second."""
    size = _QUICK if context.quick else _FULL
    files = config_files(size.objects)
    encoded = [(file.path, render(file).encode()) for file in files]
    documents = [document for file in files for document in file.documents]
    resources = _typed(documents)

    def from_files() -> int:
        return sum(_accepted(parse_yaml(data, path).resources) for path, data in encoded)

    def from_documents() -> int:
        return _accepted(_typed(documents))

    def validate_only() -> int:
        return _accepted(resources)

    paths: list[tuple[str, str, Callable[[], int]]] = [
        ("file", "YAML file → validated objects", from_files),
        ("decoded", "decoded document → validated objects", from_documents),
        ("validate", "validate() alone", validate_only),
    ]
    figures: list[Figure] = []
    for key, label, work in paths:
        cpu_rates, wall_rates = [], []
        for number in range(1, size.runs + 1):
            context.progress(f"{label}: run {number}/{size.runs}")
            cpu_rate, wall_rate = _rates(work, size.objects)
            cpu_rates.append(cpu_rate)
            wall_rates.append(wall_rate)
        target = TARGET if key == "file" else None
        figures.append(Figure(f"{label} (median, CPU time)", median(cpu_rates), _UNIT, target))
        if key == "file":
            figures.append(Figure(f"{label} (median, wall clock)", median(wall_rates), _UNIT))
    return Result(
        benchmark=BENCHMARK.name,
        figures=tuple(figures),
        parameters={"objects": size.objects, "files": len(files), "runs": size.runs},
    )


def _rates(work: Callable[[], int], expected: int) -> tuple[float, float]:
    """Objects per CPU second of this process, and per wall-clock second."""
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    accepted = work()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if accepted != expected:
        raise RuntimeError(f"only {accepted} of {expected} generated objects were accepted")
    return accepted / cpu, accepted / wall


def _typed(documents: list[dict[str, object]]) -> list[Resource]:
    typed = []
    for document in documents:
        resource, issues = parse_object(document, "bench")
        if resource is None:
            raise RuntimeError(f"generated document does not parse: {issues[0]}")
        typed.append(resource)
    return typed


def _accepted(resources: tuple[Resource, ...] | list[Resource]) -> int:
    return sum(1 for resource in resources if not has_errors(validate(resource)))


BENCHMARK = Benchmark(
    name="galley-validation",
    summary="objects/s through parse + validate (target ≥ 5,000 objects/s)",
    run=run,
)
