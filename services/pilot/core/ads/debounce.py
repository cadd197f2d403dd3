"""The push queue's debounce: merge a burst of snapshot changes into one push.

:meth:`PushDebouncer.trigger` records the newest snapshot and whether the change needs a
full push (anything but endpoints changed) or only an endpoint push. Once no trigger came
for ``quiet`` seconds, but never later than ``max_delay`` seconds after the first trigger of
the burst, ``release(snapshot, full)`` is called once with the newest snapshot; ``full`` is
true when any change of the burst was full. ``quiet=0`` releases on the next loop turn.

Task safety: call from the event loop thread. One task per burst waits for the quiet
period; ``release`` is a plain function and runs on that task, so releases never overlap.
An exception from ``release`` is logged (the burst counts as released). Cancellation:
:meth:`PushDebouncer.stop` cancels a waiting burst (it is dropped) and makes later triggers
no-ops; it is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from services.pilot.core.snapshot import MeshSnapshot

_log = logging.getLogger(__name__)

ReleaseFn = Callable[[MeshSnapshot, bool], None]


class PushDebouncer:
    """Debounces pushes (see the module docstring)."""

    def __init__(self, release: ReleaseFn, *, quiet: float, max_delay: float) -> None:
        if not 0 <= quiet <= max_delay:
            raise ValueError(f"need 0 <= quiet <= max_delay, got {quiet=} {max_delay=}")
        self._release = release
        self._quiet = quiet
        self._max_delay = max_delay
        self._snapshot: MeshSnapshot | None = None
        self._full = False
        self._first = 0.0
        self._last = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def trigger(self, snapshot: MeshSnapshot, *, full: bool) -> None:
        """Record a change to ``snapshot``; it is released after the quiet period."""
        if self._stopped:
            return
        now = asyncio.get_running_loop().time()
        if self._snapshot is None:
            self._first = now
        self._snapshot = snapshot
        self._full = self._full or full
        self._last = now
        if self._task is None:
            self._task = asyncio.create_task(self._release_when_quiet(), name="pilot-push-debounce")

    async def stop(self) -> None:
        """Drop a waiting burst and ignore later triggers. Idempotent."""
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _release_when_quiet(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = min(self._last + self._quiet, self._first + self._max_delay)
            delay = due - loop.time()
            if delay <= 0:
                break
            await asyncio.sleep(delay)
        snapshot, full = self._snapshot, self._full
        self._snapshot, self._full, self._task = None, False, None
        if snapshot is None:
            return
        try:
            self._release(snapshot, full)
        except Exception:
            _log.exception("releasing push of version %s failed", snapshot.version)
