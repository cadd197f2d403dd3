"""Coalesce bursts of changes into one flush: a quiet period, bounded by a maximum delay.

A :class:`Debouncer` calls its ``flush`` callback once changes stop for ``quiet`` seconds,
but never later than ``max_delay`` seconds after the first change that has not been
flushed yet, so a steady trickle of changes still gets flushed regularly.

Task safety: :meth:`Debouncer.trigger` is called from the event loop thread (it is not
thread-safe). The debouncer owns one background task, created on the first trigger and
running until :meth:`Debouncer.stop`. Flushes never overlap: changes triggered while a
flush runs are flushed by the next one. ``flush`` may be a plain function or return an
awaitable, which is awaited.

Errors: an exception raised by ``flush`` is logged and the debouncer keeps going (the
changes it was flushing count as flushed; the next trigger flushes again).

Cancellation: :meth:`Debouncer.stop` cancels the task, including a flush in progress;
unflushed changes are dropped. ``stop()`` is idempotent and a stopped debouncer ignores
triggers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

_log = logging.getLogger(__name__)

FlushCallback = Callable[[], Awaitable[None] | None]
"""What a debouncer calls: a plain function, or one returning an awaitable."""


class Debouncer:
    """Calls ``flush`` after ``quiet`` seconds without changes, at most ``max_delay`` late."""

    def __init__(self, flush: FlushCallback, *, quiet: float = 0.5, max_delay: float = 1.0) -> None:
        if quiet < 0 or max_delay < quiet:
            raise ValueError(f"need 0 <= quiet <= max_delay, got {quiet=} {max_delay=}")
        self._flush = flush
        self._quiet = quiet
        self._max_delay = max_delay
        self._first_change: float | None = None
        self._last_change = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def trigger(self) -> None:
        """Record a change; the flush follows after the quiet period (or the max delay)."""
        if self._stopped:
            return
        now = asyncio.get_running_loop().time()
        self._last_change = now
        if self._first_change is None:
            self._first_change = now
            self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="debouncer")

    async def stop(self) -> None:
        """Cancel the task (and a flush in progress); drop unflushed changes. Idempotent."""
        self._stopped = True
        self._first_change = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = self._first_change
            if first is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            due = min(self._last_change + self._quiet, first + self._max_delay)
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            self._first_change = None
            try:
                result = self._flush()
                if result is not None:
                    await result
            except Exception:
                _log.exception("flush after debounce failed")
