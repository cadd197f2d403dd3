"""Small statistics for benchmark figures: percentiles and medians of samples.

Pure functions over the caller's sequences (not modified). Percentiles use linear
interpolation between closest ranks (``statistics.quantiles``, inclusive method), so
``p50 <= p90 <= p99`` always holds and a single sample is every percentile. An empty
sequence is a :class:`ValueError`.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    """``{"p50": ..., "p90": ..., "p99": ...}`` of ``samples``."""
    if not samples:
        raise ValueError("no samples")
    if len(samples) == 1:
        only = float(samples[0])
        return {"p50": only, "p90": only, "p99": only}
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50": cuts[49], "p90": cuts[89], "p99": cuts[98]}


def median(samples: Sequence[float]) -> float:
    """The median of ``samples``."""
    if not samples:
        raise ValueError("no samples")
    return float(statistics.median(samples))
