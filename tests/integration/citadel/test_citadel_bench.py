"""The Citadel signing benchmark runs end to end in quick mode and reports every figure."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.registry import RunContext, benchmarks


@pytest.mark.slow
def test_quick_signing_benchmark_reports_rates_and_latencies(tmp_path: Path) -> None:
    progress: list[str] = []
    result = benchmarks()["citadel-signing"].run(
        RunContext(quick=True, work_dir=tmp_path, progress=progress.append)
    )
    names = [figure.name for figure in result.figures]
    assert "gRPC closed-loop rate (median run)" in names
    assert "gRPC open-loop latency at 100/s p99" in names
    assert all(figure.value > 0 for figure in result.figures)
    assert result.figure("gRPC closed-loop rate (median run)").target is not None
    assert any("open loop" in line for line in progress)
