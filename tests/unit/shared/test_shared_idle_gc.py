"""shared.idle_gc: full collections wait for quiet times; thresholds come back on stop."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Iterator

import pytest

from shared.idle_gc import IdleCollector


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)


async def until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` (the collector has no event to wait on), at most 5 s."""
    async with asyncio.timeout(5):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


async def test_no_automatic_full_collections_while_running(
    thresholds: tuple[int, int, int],
) -> None:
    collector = IdleCollector(lambda: None, quiet_s=60, max_interval_s=60, check_s=1)
    await collector.start()
    assert gc.get_threshold()[:2] == thresholds[:2]
    assert gc.get_threshold()[2] > 1_000_000
    await collector.stop()
    assert gc.get_threshold() == thresholds
    await collector.stop()  # idempotent


async def test_collects_once_activity_has_been_quiet_and_not_before(
    thresholds: tuple[int, int, int],
) -> None:
    activity = [time.monotonic() + 3600.0]  # busy "in the future": never quiet yet
    collector = IdleCollector(lambda: activity[0], quiet_s=0.1, max_interval_s=60, check_s=0.01)
    await collector.start()
    try:
        await asyncio.sleep(0.3)
        assert collector.collections == 0  # activity is ongoing
        activity[0] = time.monotonic()  # the last activity ends now
        await until(lambda: collector.collections == 1)
        await asyncio.sleep(0.3)
        assert collector.collections == 1  # nothing new happened since: no second one
    finally:
        await collector.stop()


async def test_collects_at_the_latest_after_the_maximum_interval(
    thresholds: tuple[int, int, int],
) -> None:
    collector = IdleCollector(lambda: None, quiet_s=0.05, max_interval_s=0.2, check_s=0.01)
    await collector.start()
    try:
        await until(lambda: collector.collections >= 1)
    finally:
        await collector.stop()


def test_intervals_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="check_s"):
        IdleCollector(lambda: None, quiet_s=1, max_interval_s=0.5)
