"""shared.idle_gc: full collections wait for quiet times; thresholds come back on stop."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator
from typing import Any

import pytest

from shared.idle_gc import IdleCollector


class FullCollections:
    """Every full (generation 2) collection, as the gc module reports them."""

    def __init__(self) -> None:
        self.count = 0
        self.happened = asyncio.Event()

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 2:
            self.count += 1
            self.happened.set()


@pytest.fixture
def full_collections() -> Iterator[FullCollections]:
    before = gc.get_threshold()
    seen = FullCollections()
    gc.callbacks.append(seen)
    yield seen
    gc.callbacks.remove(seen)
    gc.set_threshold(*before)


async def test_no_automatic_full_collections_while_running(
    full_collections: FullCollections,
) -> None:
    before = gc.get_threshold()
    collector = IdleCollector(lambda: None, quiet_s=60, max_interval_s=60, check_s=1)
    await collector.start()
    assert gc.get_threshold()[:2] == before[:2]
    assert gc.get_threshold()[2] > 1_000_000
    await collector.stop()
    assert gc.get_threshold() == before
    await collector.stop()  # idempotent


async def test_collects_once_activity_has_been_quiet_and_not_before(
    full_collections: FullCollections,
) -> None:
    activity = [time.monotonic() + 3600.0]  # busy "in the future": never quiet yet
    collector = IdleCollector(lambda: activity[0], quiet_s=0.1, max_interval_s=60, check_s=0.01)
    await collector.start()
    try:
        await asyncio.sleep(0.3)
        assert full_collections.count == 0  # activity is ongoing
        activity[0] = time.monotonic()  # the last activity ends now
        await asyncio.wait_for(full_collections.happened.wait(), 5)
        await asyncio.sleep(0.3)
        assert full_collections.count == 1  # nothing new happened since: no second one
    finally:
        await collector.stop()


async def test_collects_at_the_latest_after_the_maximum_interval(
    full_collections: FullCollections,
) -> None:
    collector = IdleCollector(lambda: None, quiet_s=0.05, max_interval_s=0.2, check_s=0.01)
    await collector.start()
    try:
        await asyncio.wait_for(full_collections.happened.wait(), 5)
    finally:
        await collector.stop()


def test_intervals_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="check_s"):
        IdleCollector(lambda: None, quiet_s=1, max_interval_s=0.5)
