"""Report batching: access-log entries in, report rules dispatched in batches.

Servicers :meth:`Reporter.submit` the bags of one access-log message at a time; a
background task gathers whole submissions until it holds ``max_entries`` bags (or more)
or ``max_delay`` seconds passed since the first one, and dispatches them together
against the config version current at that moment (one ``handle_report`` call per
handler per batch, like Istio's Mixer batching Report calls). The queue holds at most ``queue_size``
submissions: ``submit`` waits when it is full, so a burst slows its access-log stream
down (gRPC flow control reaches Envoy) instead of losing entries. ``stop`` dispatches
what is queued, then ends the task.

Task safety: event loop only. A failing batch is logged and counted; the task goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from services.mixer.core.dispatcher import Dispatcher
from services.mixer.core.runtime import ConfigRuntime
from services.mixer.core.self_metrics import MixerMetrics
from shared.policy_expr import AttributeBag

_log = logging.getLogger(__name__)


class Reporter:
    """Batches bags into report dispatches (see the module docstring)."""

    name = "mixer-report-batcher"

    def __init__(
        self,
        *,
        runtime: ConfigRuntime,
        dispatcher: Dispatcher,
        metrics: MixerMetrics,
        max_entries: int,
        max_delay: float,
        queue_size: int,
    ) -> None:
        self._runtime = runtime
        self._dispatcher = dispatcher
        self._metrics = metrics
        self._max_entries = max_entries
        self._max_delay = max_delay
        self._queue: asyncio.Queue[Sequence[AttributeBag]] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Submissions queued and not yet dispatched."""
        return self._queue.qsize()

    async def submit(self, bags: Sequence[AttributeBag]) -> None:
        """Queue ``bags`` for the next batch; waits while the queue is full."""
        if bags:
            await self._queue.put(bags)

    async def start(self) -> None:
        """Start the batching task."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Dispatch what is queued, then stop. Idempotent."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        while not self._queue.empty():
            await self._dispatch(self._take([]))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = list(await self._queue.get())
            deadline = loop.time() + self._max_delay
            while len(self._take(batch)) < self._max_entries:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    async with asyncio.timeout(remaining):
                        batch.extend(await self._queue.get())
                except TimeoutError:
                    break
            await self._dispatch(batch)

    def _take(self, batch: list[AttributeBag]) -> list[AttributeBag]:
        """Move queued submissions into ``batch`` until it holds ``max_entries``."""
        while len(batch) < self._max_entries and not self._queue.empty():
            batch.extend(self._queue.get_nowait())
        return batch

    async def _dispatch(self, batch: list[AttributeBag]) -> None:
        try:
            await self._dispatcher.report(self._runtime.current, batch)
        except Exception:
            _log.exception("report batch of %d entries failed", len(batch))
        self._metrics.reports.add(len(batch))
