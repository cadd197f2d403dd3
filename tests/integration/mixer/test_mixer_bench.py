"""The Mixer benchmark runs end to end in quick mode and reports every figure."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.registry import RunContext, benchmarks


@pytest.mark.slow
def test_quick_mixer_benchmark_reports_latencies_and_ingestion(tmp_path: Path) -> None:
    progress: list[str] = []
    result = benchmarks()["mixer-check"].run(
        RunContext(quick=True, work_dir=tmp_path, progress=progress.append)
    )
    targets = {figure.name: figure.target for figure in result.figures if figure.target}
    assert set(targets) == {
        "Check server-side, uncached p50",
        "redisquota decision p99",
        "ALS ingestion (median run)",
    }
    assert all(figure.value > 0 for figure in result.figures)
    assert any("ALS ingestion" in line for line in progress)
