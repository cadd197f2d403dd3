"""Smoke tests of the benchmark harness: every Galley benchmark runs in --quick mode.

They check that each benchmark produces well-formed figures (positive counts, finite
values, ordered percentiles, complete stage breakdowns) and that the command line writes
its JSON; they never check a figure against its performance target.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import procstat
from bench.registry import RunContext, benchmarks
from bench.results import Result
from bench.stats import percentiles
from bench.workload import config_files, generate
from services.galley.core.analysis import analyze
from services.galley.core.validation import validate
from shared.config import has_errors, parse_object

REPO = Path(__file__).resolve().parents[3]


def _run_quick(name: str, tmp_path: Path) -> Result:
    messages: list[str] = []
    context = RunContext(quick=True, work_dir=tmp_path, progress=messages.append)
    result = benchmarks()[name].run(context)
    assert result.benchmark == name
    assert messages, "no progress was reported"
    _assert_well_formed(result)
    return result


def _assert_well_formed(result: Result) -> None:
    assert result.figures, "no figures"
    for figure in result.figures:
        assert math.isfinite(figure.value), figure
        assert figure.unit, figure
    for key, value in result.parameters.items():
        if isinstance(value, int) and not isinstance(value, bool):
            assert value > 0, f"parameter {key} = {value}"
    trios = {f.name.rsplit(" ", 1)[0] for f in result.figures if f.name.endswith(" p50")}
    for trio in trios:
        p50, p90, p99 = (result.figure(f"{trio} {p}").value for p in ("p50", "p90", "p99"))
        assert p50 <= p90 <= p99, trio
    assert any(figure.target is not None for figure in result.figures)
    json.dumps(result.to_json())


def test_propagation_times_every_stage_and_waits_out_the_debounce(tmp_path: Path) -> None:
    result = _run_quick("galley-propagation", tmp_path)

    assert result.notes == (), "a stage could not be timed from Galley's log"
    debounce_ms = float(result.parameters["store_debounce_s"]) * 1000
    assert result.figure("write → all hold it p50").value >= debounce_ms
    for stage in ("write → watcher reports it", "published → all hold it"):
        assert result.figure(f"stage: {stage} p50").value >= 0
    assert result.figure("Galley CPU per 1000 pushes").value >= 0


def test_memory_reads_galley_and_counts_one_push_per_change_and_subscriber(
    tmp_path: Path,
) -> None:
    result = _run_quick("galley-memory", tmp_path)

    synced = result.figure("Galley RSS, subscribers synced").value
    assert synced > result.figure("Galley RSS, empty (baseline)").value > 0
    assert result.figure("Galley peak RSS (VmHWM), subscribers synced").value >= synced
    changes, subscribers = result.parameters["changes"], result.parameters["subscribers"]
    assert result.parameters["pushes"] == int(changes) * int(subscribers)


def test_command_line_runs_validation_and_writes_json_results(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "galley-validation", "--quick", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "galley-validation" in completed.stdout
    document = json.loads(out.read_text())
    assert document["quick"] is True and document["errors"] == {}
    assert document["machine"]["nproc"] >= 1
    (result,) = document["results"]
    assert result["benchmark"] == "galley-validation"
    assert result["parameters"]["objects"] > 0
    rates = [figure for figure in result["figures"] if figure["unit"] == "objects/s"]
    assert len(rates) == 4 and all(figure["value"] > 0 for figure in rates)
    assert [figure["target"] is not None for figure in rates] == [True, False, False, False]


def test_command_line_rejects_an_unknown_benchmark(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "no-such-bench", "--json", str(tmp_path / "x.json")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 2
    assert "no-such-bench" in completed.stderr and "galley-validation" in completed.stderr
    assert not (tmp_path / "x.json").exists()


def test_generated_workload_is_valid_and_consistent() -> None:
    documents = generate(500)
    resources = []
    for document in documents:
        resource, issues = parse_object(document, "generated")
        assert resource is not None, issues
        assert not has_errors(validate(resource)), resource.ref
        resources.append(resource)

    assert analyze(resources) == []
    assert len({resource.kind.kind for resource in resources}) >= 10
    assert sum(len(file.documents) for file in config_files(500)) == 500


def test_percentiles_are_ordered_and_a_single_sample_is_every_percentile() -> None:
    cuts = percentiles([5.0, 1.0, 9.0, 3.0, 100.0])
    assert cuts["p50"] == 5.0 and cuts["p50"] <= cuts["p90"] <= cuts["p99"] <= 100.0
    assert percentiles([2.5]) == {"p50": 2.5, "p90": 2.5, "p99": 2.5}
    with pytest.raises(ValueError):
        percentiles([])


def test_procstat_reads_this_process() -> None:
    memory = procstat.memory(os.getpid())
    assert 0 < memory.rss <= memory.hwm
    before = procstat.cpu_seconds(os.getpid())
    deadline = before + 0.05
    while procstat.cpu_seconds(os.getpid()) < deadline:
        sum(range(10_000))
    assert procstat.cpu_seconds(os.getpid()) >= deadline
    with pytest.raises(ProcessLookupError):
        procstat.memory(2**22 + 1)
