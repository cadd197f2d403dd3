"""Smoke test of the ``mixer-sidecar`` benchmark in --quick mode, and of its arms' config.

The benchmark itself starts real processes (Galley, Pilot, Mixer, two agents with
Envoy, demo apps, k6); the test checks that its result is well formed — finite
figures with units, ordered percentiles per arm, the two targets on the right figures,
one Mixer check per request in arm B and none made in arm A (the arm switch worked:
the benchmark only measures after a probe got Mixer's 403) — never the figures'
values against their targets.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from bench.mixer_sidecar import (
    BENCHMARK,
    POLICY,
    TARGET_ADDED_P90_MS,
    TARGET_MIXER_CPU_S,
    mesh_config,
)
from bench.registry import MODULES, RunContext
from services.galley.core.validation import validate
from shared.config import has_errors, parse_yaml


def test_both_arms_meshconfigs_and_the_policy_pass_galleys_validation() -> None:
    for text in (mesh_config(None), mesh_config("127.0.0.1:9091"), POLICY):
        parsed = parse_yaml(text, "bench.yaml")
        assert parsed.resources and not has_errors(parsed.issues)
        for resource in parsed.resources:
            assert not has_errors(validate(resource)), resource
    assert "mixerCheckServer" not in mesh_config(None)
    assert "mixerCheckServer: 127.0.0.1:9091" in mesh_config("127.0.0.1:9091")


def test_quick_run_reports_both_arms_the_added_latency_and_cpu(tmp_path: Path) -> None:
    assert "bench.mixer_sidecar" in MODULES
    messages: list[str] = []
    result = BENCHMARK.run(RunContext(quick=True, work_dir=tmp_path, progress=messages.append))

    assert result.benchmark == "mixer-sidecar"
    assert any("arm B" in message for message in messages)
    for figure in result.figures:
        assert math.isfinite(figure.value) and figure.unit, figure
    for arm in ("no Check (A)", "with Check (B)"):
        p50, p90, p99 = (result.figure(f"{arm} {p}").value for p in ("p50", "p90", "p99"))
        assert 0 < p50 <= p90 <= p99, arm
    assert result.figure("Check adds at p90").target == TARGET_ADDED_P90_MS
    assert result.figure("Mixer CPU per 1,000 checks").target == TARGET_MIXER_CPU_S
    assert result.figure("Mixer checks per request (A)").value == 0
    assert result.figure("Mixer checks per request (B)").value >= 0.9
    assert result.figure("Mixer CPU per 1,000 checks").value > 0
    assert result.figure("Mixer RSS").value > 0
    assert result.figure("requests failed (A)").value == 0
    assert result.figure("requests failed (B)").value == 0
    assert int(result.parameters["requests A"]) > 0 and int(result.parameters["requests B"]) > 0
    json.dumps(result.to_json())
