"""What a benchmark reports: named figures with units and optional targets.

A :class:`Result` is one benchmark's outcome: its figures in display order and the
parameters it ran with (object counts, runs, debounce...). A :class:`Figure` may carry a
:class:`Target` (``<=`` or ``>=`` a value); :attr:`Figure.met` says whether the figure
meets it. :meth:`Result.to_json` is the shape written by ``python -m bench --json``.
Immutable values; :func:`percentile_figures` builds the usual p50/p90/p99 trio.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from bench.stats import percentiles

Parameter = str | int | float | bool


@dataclass(frozen=True, slots=True)
class Target:
    """A bound a figure should respect: ``op`` is ``"<="`` (at most) or ``">="`` (at least)."""

    op: Literal["<=", ">="]
    value: float

    def met_by(self, value: float) -> bool:
        """Whether ``value`` respects the bound."""
        return value <= self.value if self.op == "<=" else value >= self.value

    def __str__(self) -> str:
        return f"{'≤' if self.op == '<=' else '≥'} {self.value:g}"


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured number: ``name``, ``value`` in ``unit``, and the target it answers to."""

    name: str
    value: float
    unit: str
    target: Target | None = None

    @property
    def met(self) -> bool | None:
        """Whether the target is met; None when the figure has no target."""
        return None if self.target is None else self.target.met_by(self.value)

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly dict of the figure."""
        target = None
        if self.target is not None:
            target = {"op": self.target.op, "value": self.target.value}
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "target": target,
            "met": self.met,
        }


@dataclass(frozen=True, slots=True)
class Result:
    """One benchmark's figures (display order) and the parameters it ran with."""

    benchmark: str
    figures: tuple[Figure, ...]
    parameters: Mapping[str, Parameter] = field(default_factory=lambda: MappingProxyType({}))
    notes: tuple[str, ...] = ()

    def figure(self, name: str) -> Figure:
        """The figure called ``name``; :class:`KeyError` if there is none."""
        for figure in self.figures:
            if figure.name == name:
                return figure
        raise KeyError(f"{self.benchmark} has no figure {name!r}")

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly dict of the result."""
        return {
            "benchmark": self.benchmark,
            "parameters": dict(self.parameters),
            "figures": [figure.to_json() for figure in self.figures],
            "notes": list(self.notes),
        }


def percentile_figures(
    name: str, samples: Sequence[float], unit: str, *, target_p99: Target | None = None
) -> list[Figure]:
    """``<name> p50``, ``p90`` and ``p99`` of ``samples``; the target applies to p99."""
    cuts = percentiles(samples)
    return [
        Figure(f"{name} {key}", value, unit, target_p99 if key == "p99" else None)
        for key, value in cuts.items()
    ]
