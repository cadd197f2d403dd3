"""Pilot's ADS send window: a bound on responses written at once that no client can stall."""

from __future__ import annotations

import asyncio

from services.pilot.adapters.ads_server import SendSlots


async def test_writes_beyond_the_window_wait_for_a_free_slot() -> None:
    slots = SendSlots(2, hold_s=60)
    inside: list[int] = []
    release = asyncio.Event()

    async def write(number: int) -> None:
        async with slots.slot():
            inside.append(number)
            await release.wait()

    tasks = [asyncio.create_task(write(n)) for n in range(3)]
    await asyncio.sleep(0.05)
    assert inside == [0, 1]  # the third waits
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert inside == [0, 1, 2]


async def test_a_write_that_never_finishes_gives_its_slot_back_after_the_hold_time() -> None:
    slots = SendSlots(1, hold_s=0.2)
    stuck_inside = asyncio.Event()

    async def stuck() -> None:
        async with slots.slot():
            stuck_inside.set()
            await asyncio.Event().wait()  # a client that stopped reading

    stuck_task = asyncio.create_task(stuck())
    await stuck_inside.wait()
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(5):
        async with slots.slot():
            waited = loop.time() - started
    assert waited >= 0.15  # not before the hold time
    stuck_task.cancel()
    await asyncio.gather(stuck_task, return_exceptions=True)

    # The stuck write's late exit does not free a second slot: the window is still one.
    first_inside, second_inside = asyncio.Event(), asyncio.Event()
    done = asyncio.Event()

    async def hold(entered: asyncio.Event) -> None:
        async with slots.slot():
            entered.set()
            await done.wait()

    tasks = [asyncio.create_task(hold(first_inside)), asyncio.create_task(hold(second_inside))]
    await first_inside.wait()
    await asyncio.sleep(0.05)
    assert not second_inside.is_set()
    done.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
