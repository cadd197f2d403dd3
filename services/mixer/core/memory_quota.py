"""The in-memory :class:`~services.mixer.ports.QuotaBackend` behind ``memquota``.

Fixed windows are aligned to the epoch (``floor(now / window)``), as in the Redis
backend, so every counter of one window resets at the same instant; rolling windows sum
the buckets of the last ``window`` seconds. Deduplication ids are remembered for
``dedup_ttl`` seconds. Counters whose window has passed are swept every
``sweep_every`` allocations, so memory follows the live keys.

Task safety: allocations run on the event loop without awaiting in between, so each is
atomic. Counts live in this process only (one Mixer), as with Istio's memquota.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field

from services.mixer.ports import QuotaGrant, QuotaRequest


@dataclass(slots=True)
class _Counter:
    expires: float
    window_start: float = 0.0
    used: int = 0
    buckets: dict[int, int] = field(default_factory=dict)


class MemoryQuotaBackend:
    """Counts quota in this process (see the module docstring)."""

    def __init__(self, *, sweep_every: int = 1000) -> None:
        self._counters: dict[str, _Counter] = {}
        self._dedup: OrderedDict[str, tuple[float, QuotaGrant]] = OrderedDict()
        self._sweep_every = sweep_every
        self._calls = 0

    def __len__(self) -> int:
        return len(self._counters)

    async def allocate(self, request: QuotaRequest) -> QuotaGrant:
        """Allocate atomically; never raises."""
        now = request.now
        self._calls += 1
        if self._calls % self._sweep_every == 0:
            self._sweep(now)
        while self._dedup and next(iter(self._dedup.values()))[0] <= now:
            self._dedup.popitem(last=False)
        if request.dedup_id:
            remembered = self._dedup.get(request.dedup_id)
            if remembered is not None and remembered[0] > now:
                return remembered[1]
        if request.algorithm == "ROLLING_WINDOW" and request.window > 0:
            grant = self._rolling(request)
        else:
            grant = self._fixed(request)
        if request.dedup_id:
            self._dedup[request.dedup_id] = (now + request.dedup_ttl, grant)
        return grant

    def _fixed(self, request: QuotaRequest) -> QuotaGrant:
        now, window = request.now, request.window
        start = math.floor(now / window) * window if window > 0 else 0.0
        end = start + window if window > 0 else math.inf
        counter = self._counters.get(request.key)
        if counter is None or counter.window_start != start:
            counter = self._counters[request.key] = _Counter(expires=end, window_start=start)
        granted = _grant(request, request.max_amount - counter.used)
        counter.used += granted
        reset = end - now if window > 0 else 0.0
        return QuotaGrant(granted, max(request.max_amount - counter.used, 0), reset)

    def _rolling(self, request: QuotaRequest) -> QuotaGrant:
        now, bucket = request.now, request.bucket
        current = math.floor(now / bucket)
        count = max(math.ceil(request.window / bucket), 1)
        oldest = current - count + 1
        counter = self._counters.get(request.key)
        if counter is None:
            counter = self._counters[request.key] = _Counter(expires=0.0)
        buckets = counter.buckets
        for index in [index for index in buckets if index < oldest]:
            del buckets[index]
        used = sum(buckets.values())
        granted = _grant(request, request.max_amount - used)
        if granted:
            buckets[current] = buckets.get(current, 0) + granted
        counter.expires = (current + 1) * bucket + request.window
        first = min(buckets, default=current)
        reset = max((first + count) * bucket - now, 0.0)
        return QuotaGrant(granted, max(request.max_amount - used - granted, 0), reset)

    def _sweep(self, now: float) -> None:
        for key in [key for key, counter in self._counters.items() if counter.expires <= now]:
            del self._counters[key]


def _grant(request: QuotaRequest, available: int) -> int:
    if request.amount <= available:
        return request.amount
    return max(available, 0) if request.best_effort else 0
