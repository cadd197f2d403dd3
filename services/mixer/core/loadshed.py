"""Load shedding: refuse work with UNAVAILABLE while Mixer is over its latency budget.

Like Istio's Mixer ``grpc-latency`` evaluator: a :class:`LoadShedder` keeps an
exponentially weighted average of observed latencies (calls handled, and the event
loop's scheduling lag sampled by :class:`LoopLagMonitor`, which is what grows first when
the process is saturated) and reports :meth:`LoadShedder.overloaded` while the average
is over ``budget`` seconds. A budget of 0 disables shedding. Refused calls are cheap and
observed too, so the average falls back under the budget as soon as the lag does.

Task safety: event loop only. The monitor is a Component (``start``/``stop``).
"""

from __future__ import annotations

import asyncio

from shared.lifecycle import cancel_and_wait


class LoadShedder:
    """The average latency against a budget (see the module docstring)."""

    def __init__(self, *, budget: float, weight: float = 0.2) -> None:
        self.budget = budget
        self._weight = weight
        self.average = 0.0

    def observe(self, latency: float) -> None:
        """Fold one latency (seconds) into the average."""
        self.average += (latency - self.average) * self._weight

    def overloaded(self) -> bool:
        """Whether calls should be refused now."""
        return self.budget > 0 and self.average > self.budget


class LoopLagMonitor:
    """Samples the event loop's scheduling lag into a :class:`LoadShedder`."""

    name = "mixer-loop-lag-monitor"

    def __init__(self, shedder: LoadShedder, *, interval: float = 0.02) -> None:
        self._shedder = shedder
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start sampling (nothing to do when shedding is disabled)."""
        if self._shedder.budget > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Stop sampling. Idempotent."""
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + self._interval
            await asyncio.sleep(self._interval)
            self._shedder.observe(max(loop.time() - expected, 0.0))
