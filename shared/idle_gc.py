"""Full garbage collections when a service is idle, not in the middle of its work.

CPython's cyclic collector runs a full (oldest-generation) collection once enough objects
have survived; in a service that holds hundreds of thousands of long-lived objects (Pilot's
mesh snapshot and packed configs) one takes a quarter of a second, and it tends to start
in the middle of a push, which it then delays. :class:`IdleCollector` turns automatic
full collections off while it runs (the young generations still collect automatically)
and runs them itself: once ``last_activity()`` (a ``time.monotonic()`` value, None before
any) is at least ``quiet_s`` old and there was activity since its last full collection,
and at the latest every ``max_interval_s`` whatever the activity. Stopping restores the
collector's previous thresholds.

Task safety: one task on the service's event loop; the collection runs on that loop (it
holds the GIL either way). Errors: none expected; a failing ``last_activity`` is logged
and counts as activity now.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable

from shared.lifecycle import cancel_and_wait

_log = logging.getLogger(__name__)

_NEVER = 1 << 30  # a gen-2 threshold no service reaches: no automatic full collections


class IdleCollector:
    """A :class:`~shared.lifecycle.Component` running full collections at quiet times."""

    def __init__(
        self,
        last_activity: Callable[[], float | None],
        *,
        quiet_s: float = 2.0,
        max_interval_s: float = 60.0,
        check_s: float = 0.5,
    ) -> None:
        if not 0 < check_s <= quiet_s <= max_interval_s:
            raise ValueError(f"need 0 < {check_s=} <= {quiet_s=} <= {max_interval_s=}")
        self._last_activity = last_activity
        self._quiet_s = quiet_s
        self._max_interval_s = max_interval_s
        self._check_s = check_s
        self._task: asyncio.Task[None] | None = None
        self._thresholds: tuple[int, int, int] | None = None

    @property
    def name(self) -> str:
        """The component's name in logs."""
        return "idle-gc"

    async def start(self) -> None:
        """Turn automatic full collections off and start watching for quiet times."""
        young, middle, oldest = gc.get_threshold()
        self._thresholds = (young, middle, oldest)
        gc.set_threshold(young, middle, _NEVER)
        self._task = asyncio.create_task(self._run(), name="idle-gc")

    async def stop(self) -> None:
        """Stop and restore the previous thresholds. Idempotent."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            self._thresholds = None

    async def _run(self) -> None:
        collected_at = time.monotonic()
        while True:
            await asyncio.sleep(self._check_s)
            now = time.monotonic()
            try:
                activity = self._last_activity()
            except Exception:
                _log.exception("last_activity failed; treating it as activity now")
                activity = now
            settled = activity is not None and collected_at < activity <= now - self._quiet_s
            if settled or now - collected_at >= self._max_interval_s:
                started = time.perf_counter()
                found = gc.collect()
                collected_at = time.monotonic()
                _log.debug(
                    "full collection: %d objects in %.0f ms",
                    found,
                    (time.perf_counter() - started) * 1000,
                )
