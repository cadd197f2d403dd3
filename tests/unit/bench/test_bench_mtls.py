"""Smoke tests of the mTLS benchmarks in --quick mode: they run and report sane figures.

They never compare a figure with its performance target.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.registry import RunContext, benchmarks
from bench.results import Result


def _run_quick(name: str, tmp_path: Path) -> Result:
    messages: list[str] = []
    result = benchmarks()[name].run(
        RunContext(quick=True, work_dir=tmp_path, progress=messages.append)
    )
    assert result.benchmark == name and messages
    for figure in result.figures:
        assert math.isfinite(figure.value) and figure.unit == "ms", figure
    return result


def test_agent_cert_start_times_each_stage_up_to_envoy_holding_the_certificate(
    tmp_path: Path,
) -> None:
    result = _run_quick("agent-cert-start", tmp_path)
    held = result.figure("agent start → Envoy holds its certificate p50")
    assert held.target is not None
    assert held.value >= result.figure("median: agent start → certificate signed").value > 0
    assert held.value >= result.figure("median: agent start → Envoy live").value > 0
    assert result.parameters["starts"] == 2


def test_mtls_overhead_measures_both_transports_interleaved(tmp_path: Path) -> None:
    result = _run_quick("mtls-overhead", tmp_path)  # fails unless mTLS was really used
    assert result.notes == ()  # no request failed
    for kind in ("plaintext", "mTLS"):
        p50, p90, p99 = (result.figure(f"{kind} {key}").value for key in ("p50", "p90", "p99"))
        assert 0 < p50 <= p90 <= p99
    added = result.figure("p50 added by mTLS").value
    expected = result.figure("mTLS p50").value - result.figure("plaintext p50").value
    assert added == pytest.approx(expected)  # one round: the median is that round's
