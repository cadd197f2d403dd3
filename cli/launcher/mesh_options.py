"""What a local mesh runs and where: :class:`MeshOptions` (immutable)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cli.launcher.workloads import WorkloadsFile


@dataclass(frozen=True)
class MeshOptions:
    """What to run and where. ``env`` is added to every child's environment.

    Galley, Pilot and the workloads always run. ``citadel`` adds Citadel and a token per
    workload; ``mixer`` adds Mixer, on the port MeshConfig names, and ``redis`` then adds
    Redis for its quotas when ``redis-server`` is on PATH. ``splitmesh up`` turns all
    three on (Istio 1.4's split deployment); tests that bring their own turn them off.
    """

    config_dir: Path
    workloads: WorkloadsFile
    run_dir: Path
    delta: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    start_timeout_s: float = 60.0
    drain_time_s: float = 0.5
    citadel: bool = False
    mixer: bool = False
    redis: bool = False
