"""The launcher file: which workloads ``splitmesh up`` starts, and how.

A YAML file (not an Istio kind; ``examples/apps/workloads.yaml`` is the demo's) with an
optional ``workdir`` (relative to the file; app commands run there) and a list of
``workloads``, each with ``name``, ``namespace``, ``serviceAccount``, ``labels``, the
``service`` it serves and its mesh endpoint ``port`` (its sidecar binds it), an optional
``type`` (``sidecar``, or ``router`` for a gateway proxy without an app) and the app's
``command`` with placeholders ``{python}``, ``{app_port}`` and ``{outbound_port}``.

:func:`load_workloads` raises :class:`WorkloadsError` naming the file and the field.
Values are immutable.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class WorkloadsError(ValueError):
    """The launcher file cannot be read or is invalid; the message names the place."""


class Workload(BaseModel):
    """One workload: its identity, what it serves, and how to run its app."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    namespace: str = Field(default="default", min_length=1)
    service_account: str = Field(default="default", alias="serviceAccount")
    labels: dict[str, str] = Field(default_factory=dict)
    type: Literal["sidecar", "router"] = "sidecar"
    service: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    command: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Workload:
        if (self.service is None) != (self.port is None):
            raise ValueError("service and port must be given together")
        if self.type == "sidecar" and not self.command:
            raise ValueError("a sidecar workload needs the command that runs its app")
        return self

    @property
    def has_app(self) -> bool:
        """Whether an app process runs beside the proxy."""
        return bool(self.command)

    def app_argv(self, *, app_port: int, outbound_port: int | None) -> list[str]:
        """The app's command with the placeholders filled in."""
        values = {
            "python": sys.executable,
            "app_port": str(app_port),
            "outbound_port": "" if outbound_port is None else str(outbound_port),
        }
        return [part.format_map(values) for part in self.command]


class WorkloadsFile(BaseModel):
    """The parsed launcher file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workdir: Path = Path()
    workloads: tuple[Workload, ...]

    @model_validator(mode="after")
    def _unique(self) -> WorkloadsFile:
        names = [workload.name for workload in self.workloads]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"workload names must be unique; repeated: {duplicates}")
        return self


def load_workloads(path: Path) -> WorkloadsFile:
    """Read and check ``path``; ``workdir`` comes back absolute."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise WorkloadsError(f"{path}: {exc}") from exc
    try:
        parsed = WorkloadsFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        raise WorkloadsError(f"{path}: {problems}") from exc
    return parsed.model_copy(update={"workdir": (path.parent / parsed.workdir).resolve()})
