"""Smoke tests of the Pilot and sidecar benchmarks: each runs in --quick mode.

They start real processes (Galley, Pilot, agents with Envoy, demo apps) through the
benchmarks themselves and check that the results are well formed: finite figures with
units, ordered percentiles, a target on the headline figure, every stage timed, and
stages that add up to the end-to-end time. They never compare a figure with its target.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.pilot_mesh import routes, service_entries
from bench.pilot_scale import mesh_files
from bench.registry import RunContext, benchmarks
from bench.results import Result
from shared.config import has_errors, parse_yaml

_SLACK_MS = 1.0  # rounding of timestamps taken on different clocks


def _run_quick(name: str, tmp_path: Path) -> Result:
    messages: list[str] = []
    result = benchmarks()[name].run(
        RunContext(quick=True, work_dir=tmp_path, progress=messages.append)
    )
    assert result.benchmark == name
    assert messages, "no progress was reported"
    assert result.figures and result.notes == ()
    for figure in result.figures:
        assert math.isfinite(figure.value) and figure.unit, figure
    trios = {f.name.rsplit(" ", 1)[0] for f in result.figures if f.name.endswith(" p50")}
    assert trios
    for trio in trios:
        p50, p90, p99 = (result.figure(f"{trio} {p}").value for p in ("p50", "p90", "p99"))
        assert p50 <= p90 <= p99, trio
    assert any(figure.target is not None for figure in result.figures)
    json.dumps(result.to_json())
    return result


def test_propagation_times_every_stage_of_a_change_through_real_sidecars(tmp_path: Path) -> None:
    result = _run_quick("pilot-propagation", tmp_path)

    assert result.parameters["sidecars"] == 2 and result.parameters["changes"] == 2
    debounces_ms = (
        float(result.parameters["galley_debounce_s"]) + float(result.parameters["pilot_debounce_s"])
    ) * 1000
    headline = result.figure("write → all sidecars ACKed p50")
    assert headline.target is not None and headline.target.value == debounces_ms + 50
    assert headline.value >= debounces_ms
    stages = [
        result.figure(f"stage: {stage} p50").value
        for stage in (
            "write → Galley published",
            "Galley published → Pilot released",
            "Pilot released → all ACKed",
        )
    ]
    assert all(stage >= 0 for stage in stages)
    assert result.figure("Pilot CPU per change").value >= 0


def test_scale_pushes_both_kinds_over_both_protocols_and_reads_pilots_memory(
    tmp_path: Path,
) -> None:
    result = _run_quick("pilot-scale", tmp_path)

    baseline = result.figure("Pilot RSS, config loaded, no proxies").value
    assert baseline > 0
    for protocol in ("sotw", "delta"):
        synced = result.figure(f"{protocol}: Pilot RSS, proxies synced")
        assert synced.target is not None and synced.value > 0
        assert result.figure(f"{protocol}: Pilot peak RSS (VmHWM)").value >= synced.value
        for kind in ("full push", "endpoint update"):
            label = f"{protocol} {kind}"
            to_all = result.figure(f"{label}: Pilot release → all p99")
            assert to_all.target is not None
            first = result.figure(f"{label}: Pilot release → first, median").value
            assert 0 <= first <= to_all.value
            galley = result.figure(f"{label}: write → Galley published, median").value
            pilot = result.figure(f"{label}: Galley published → Pilot released, median").value
            whole = result.figure(f"{label}: write → all, median").value
            assert galley >= 0 and pilot >= 0
            assert galley + pilot + to_all.value == pytest.approx(whole, abs=_SLACK_MS)


def test_agent_start_reaches_a_routed_request_after_envoy_is_up(tmp_path: Path) -> None:
    result = _run_quick("agent-start", tmp_path)

    assert result.parameters["starts"] == 2
    routed = result.figure("agent start → first routed request p50")
    assert routed.target is not None and routed.unit == "s"
    admin = result.figure("median: agent start → Envoy admin answers").value
    ready = result.figure("median: agent start → Envoy ready (xDS)").value
    assert 0 < admin <= ready <= result.figure("agent start → first routed request p99").value


def test_the_generated_mesh_and_the_benchmark_app_config_are_valid() -> None:
    files = mesh_files(30)
    kinds = [document["kind"] for file in files for document in file.documents]
    assert kinds.count("ServiceEntry") == 30 and "Sidecar" not in kinds
    for text in (service_entries([18081, 18082]), routes(1500)):
        parsed = parse_yaml(text, "bench.yaml")
        assert not has_errors(parsed.issues) and parsed.resources
