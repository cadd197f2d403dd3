"""The run directory's ``state.json``: what a running mesh is made of, for other commands.

``splitmesh up`` writes it (status ``starting``, then ``running``) and removes it when the
mesh stops; ``status``, ``down``, ``proxy-config`` and ``demo`` read it. Writes are atomic
(a sibling file renamed over it), so a reader never sees half a file. :func:`read_state`
returns None when there is no state file; a state whose launcher process is gone is
reported by :meth:`MeshState.launcher_alive`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

STATE_FILE = "state.json"


class StateError(RuntimeError):
    """The state file exists but cannot be read."""


class ComponentState(BaseModel):
    """One component: a control-plane service, or a workload (its agent and app)."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: Literal["redis", "galley", "citadel", "mixer", "pilot", "workload"]
    pid: int | None
    ports: dict[str, int]
    log: Path
    node_id: str | None = None
    app_pid: int | None = None
    app_log: Path | None = None


class MeshState(BaseModel):
    """The whole mesh as the launcher last wrote it."""

    model_config = ConfigDict(frozen=True)

    launcher_pid: int
    status: Literal["starting", "running"]
    run_dir: Path
    config_dir: Path
    delta: bool
    components: tuple[ComponentState, ...] = ()
    notes: tuple[str, ...] = ()  # what the user should know about this mesh

    def component(self, name: str) -> ComponentState | None:
        """The component called ``name``, if any."""
        return next((c for c in self.components if c.name == name), None)

    def launcher_alive(self) -> bool:
        """Whether the process that started this mesh still runs."""
        return pid_alive(self.launcher_pid)


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (and is not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def write_state(run_dir: Path, state: MeshState) -> None:
    """Atomically replace ``run_dir/state.json``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    partial = run_dir / f".{STATE_FILE}.{os.getpid()}.partial"
    partial.write_text(state.model_dump_json(indent=2))
    partial.replace(run_dir / STATE_FILE)


def read_state(run_dir: Path) -> MeshState | None:
    """The state in ``run_dir``, or None when there is none."""
    path = run_dir / STATE_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read {path}: {exc}") from exc
    try:
        return MeshState.model_validate_json(text)
    except ValidationError as exc:
        raise StateError(f"{path} is not a splitmesh state file: {exc}") from exc


def remove_state(run_dir: Path) -> None:
    """Remove ``run_dir/state.json`` if present."""
    (run_dir / STATE_FILE).unlink(missing_ok=True)
