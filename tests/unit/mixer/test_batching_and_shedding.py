"""Report batching and load shedding."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import pytest

from services.mixer.core.errors import OverloadedError
from services.mixer.core.loadshed import LoadShedder, LoopLagMonitor
from services.mixer.core.reporter import Reporter
from shared.policy_expr import AttributeBag, DictBag


class RecordingDispatcher:
    """Stands in for the dispatcher's report side: records each batch."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    async def report(self, config: object, bags: Sequence[AttributeBag]) -> None:
        self.batches.append(len(bags))


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait (up to 10 s) until ``condition`` holds."""
    deadline = time.monotonic() + 10.0
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def reporter(kit, dispatcher: RecordingDispatcher, *, max_entries: int, delay: float) -> Reporter:
    return Reporter(
        runtime=kit.runtime,
        dispatcher=dispatcher,  # type: ignore[arg-type]
        metrics=kit.metrics,
        max_entries=max_entries,
        max_delay=delay,
        queue_size=100,
    )


async def test_batches_are_cut_at_max_entries(kit) -> None:
    dispatcher = RecordingDispatcher()
    batcher = reporter(kit, dispatcher, max_entries=4, delay=30.0)
    await batcher.start()
    for _ in range(8):
        await batcher.submit([DictBag()])
    await eventually(lambda: sum(dispatcher.batches) == 8)
    await batcher.stop()
    assert dispatcher.batches == [4, 4]
    assert kit.counter("mixer_report_entries_total") == 8


async def test_a_partial_batch_goes_out_after_max_delay(kit) -> None:
    dispatcher = RecordingDispatcher()
    batcher = reporter(kit, dispatcher, max_entries=100, delay=0.05)
    await batcher.start()
    for _ in range(3):
        await batcher.submit([DictBag()])
    await eventually(lambda: bool(dispatcher.batches))
    assert dispatcher.batches == [3]
    await batcher.stop()


async def test_stop_dispatches_what_is_queued(kit) -> None:
    dispatcher = RecordingDispatcher()
    batcher = reporter(kit, dispatcher, max_entries=2, delay=30.0)
    for _ in range(5):
        await batcher.submit([DictBag()])
    await batcher.start()
    await batcher.stop()
    assert sum(dispatcher.batches) == 5


def test_the_shedder_follows_the_average_latency() -> None:
    shedder = LoadShedder(budget=0.010, weight=0.5)
    shedder.observe(0.002)
    assert not shedder.overloaded()
    for _ in range(5):
        shedder.observe(0.050)
    assert shedder.overloaded()
    for _ in range(10):
        shedder.observe(0.0)
    assert not shedder.overloaded()
    assert not LoadShedder(budget=0.0, weight=1.0).overloaded()


async def test_checks_are_refused_over_the_budget_and_counted(kit) -> None:
    await kit.load("")
    kit.shedder.budget = 0.001
    for _ in range(20):
        kit.shedder.observe(0.1)
    with pytest.raises(OverloadedError):
        kit.check({})
    with pytest.raises(OverloadedError):
        await kit.quota("q.instance.ns")
    assert kit.counter("mixer_load_shed_total", api="check") == 1
    assert kit.counter("mixer_load_shed_total", api="quota") == 1
    for _ in range(50):
        kit.shedder.observe(0.0)
    assert kit.check({}).status.ok


async def test_the_loop_lag_monitor_sees_a_blocked_event_loop() -> None:
    shedder = LoadShedder(budget=0.005, weight=1.0)
    monitor = LoopLagMonitor(shedder, interval=0.01)
    await monitor.start()
    try:
        await asyncio.sleep(0.03)
        time.sleep(0.1)  # noqa: ASYNC251 - blocks the loop: the next sample is ~0.1 s late
        await eventually(shedder.overloaded)
        assert shedder.average > 0.005
    finally:
        await monitor.stop()
        await monitor.stop()
