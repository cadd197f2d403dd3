"""The series the ``prometheus`` adapter records, kept across config versions.

A :class:`MetricStore` holds :class:`MetricFamily` objects by name; a handler asks for
its families with :meth:`MetricStore.family` on every config version and gets the same
object back (series kept) while the definition is unchanged, or a fresh one when it
changed. Counters add, gauges set, distributions count into cumulative buckets. The
Prometheus collector (an adapter) reads :meth:`MetricStore.families` on each scrape.

Task safety: record and read on the event loop thread only (the scrape handler runs
there too). Values are floats; label values strings.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

MetricKind = Literal["COUNTER", "GAUGE", "DISTRIBUTION"]


@dataclass(slots=True)
class Distribution:
    """Counts per bucket (the last one is +Inf), sum and count."""

    counts: list[int]
    total: float = 0.0
    count: int = 0


@dataclass(frozen=True, slots=True)
class MetricDefinition:
    """What a family is: name, kind, help text, label names and bucket bounds."""

    name: str
    kind: MetricKind
    description: str
    label_names: tuple[str, ...]
    bounds: tuple[float, ...] = ()


@dataclass(slots=True)
class MetricFamily:
    """One metric and its series, keyed by label values (in ``label_names`` order)."""

    definition: MetricDefinition
    values: dict[tuple[str, ...], float] = field(default_factory=dict)
    distributions: dict[tuple[str, ...], Distribution] = field(default_factory=dict)

    def record(self, labels: tuple[str, ...], value: float) -> None:
        """Add (counter), set (gauge) or observe (distribution) ``value``."""
        kind = self.definition.kind
        if kind == "COUNTER":
            self.values[labels] = self.values.get(labels, 0.0) + value
        elif kind == "GAUGE":
            self.values[labels] = value
        else:
            series = self.distributions.get(labels)
            if series is None:
                series = Distribution([0] * (len(self.definition.bounds) + 1))
                self.distributions[labels] = series
            series.counts[bisect.bisect_left(self.definition.bounds, value)] += 1
            series.total += value
            series.count += 1


class MetricStore:
    """Families by name (see the module docstring)."""

    def __init__(self) -> None:
        self._families: dict[str, MetricFamily] = {}

    def family(self, definition: MetricDefinition) -> MetricFamily:
        """The family for ``definition``: the existing one if identical, else a new one."""
        found = self._families.get(definition.name)
        if found is None or found.definition != definition:
            found = self._families[definition.name] = MetricFamily(definition)
        return found

    def families(self) -> Sequence[MetricFamily]:
        """Every family (a fresh list; the families themselves are live)."""
        return list(self._families.values())
