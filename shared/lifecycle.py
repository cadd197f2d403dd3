"""Long-running parts of a process and the host that starts and stops them.

A :class:`Component` has an ``async start()`` that returns once it is serving and an
idempotent ``async stop()``. A :class:`ComponentHost` starts components in order; if one
fails to start, the ones already started are stopped in reverse order and the error is
re-raised as :class:`StartupError`. Stopping always goes in reverse order and keeps going
past a component whose stop fails.

Task safety: a host is driven from one event loop; ``stop()`` may be called concurrently
with itself (signals), and only the first call does the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

_log = logging.getLogger(__name__)


@runtime_checkable
class Component(Protocol):
    """Something with a life: started once, stopped (idempotently) at the end."""

    @property
    def name(self) -> str:
        """A short human name used in logs and errors."""
        ...

    async def start(self) -> None:
        """Return once the component serves; raise if it cannot."""
        ...

    async def stop(self) -> None:
        """Release everything the component holds. Safe to call twice or before start."""
        ...


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (None: nothing to do) and wait until it has finished.

    The task's own ``CancelledError`` is absorbed; what it raised otherwise propagates.
    Components use it to stop their background task.
    """
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class StartupError(RuntimeError):
    """A component failed to start; the components started before it were stopped."""

    def __init__(self, component: str, cause: BaseException) -> None:
        super().__init__(f"{component} failed to start: {cause}")
        self.component = component


class ComponentHost:
    """Starts components in order, stops them in reverse, and waits for a signal."""

    def __init__(self, components: Sequence[Component], *, name: str = "splitmesh") -> None:
        self._components = list(components)
        self._name = name
        self._started: list[Component] = []
        self._stopping: asyncio.Task[None] | None = None
        self._stop_requested = asyncio.Event()

    @property
    def components(self) -> Sequence[Component]:
        """The components in start order (read-only view)."""
        return tuple(self._components)

    async def start(self) -> None:
        """Start every component; on failure roll back and raise :class:`StartupError`."""
        for component in self._components:
            try:
                await component.start()
            except Exception as exc:
                _log.error("start of %s failed: %s; rolling back", component.name, exc)
                await self._stop_started()
                raise StartupError(component.name, exc) from exc
            self._started.append(component)
            _log.info("started %s", component.name)

    async def stop(self) -> None:
        """Stop every started component in reverse order. Idempotent."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop_started())
        await asyncio.shield(self._stopping)

    def request_stop(self) -> None:
        """Ask :meth:`run` to stop; safe to call from a signal handler."""
        self._stop_requested.set()

    async def run(self, *, handle_signals: bool = True) -> None:
        """Start, serve until SIGTERM/SIGINT or :meth:`request_stop`, then stop."""
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.add_signal_handler(sig, self.request_stop)
                    installed.append(sig)
                except (NotImplementedError, RuntimeError):  # not the main thread
                    break
        try:
            await self.start()
            _log.info("%s is serving", self._name)
            await self._stop_requested.wait()
            _log.info("%s is stopping", self._name)
        finally:
            await self.stop()
            for sig in installed:
                loop.remove_signal_handler(sig)

    async def _stop_started(self) -> None:
        while self._started:
            component = self._started.pop()
            try:
                await component.stop()
            except Exception:
                _log.exception("stop of %s failed; continuing", component.name)
            else:
                _log.info("stopped %s", component.name)
