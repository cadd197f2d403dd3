"""ComponentHost: start order, rollback of a failed start, idempotent stop, run()."""

from __future__ import annotations

import asyncio

import pytest

from shared.lifecycle import Component, ComponentHost, StartupError


class Recorded:
    """A component that writes its starts and stops into a shared journal."""

    def __init__(
        self,
        name: str,
        journal: list[str],
        *,
        fail_start: bool = False,
        fail_stop: bool = False,
    ) -> None:
        self._name = name
        self._journal = journal
        self._fail_start = fail_start
        self._fail_stop = fail_stop
        self.started = asyncio.Event()

    @property
    def name(self) -> str:
        return self._name

    async def start(self) -> None:
        await asyncio.sleep(0)
        if self._fail_start:
            raise OSError("port in use")
        self._journal.append(f"start {self._name}")
        self.started.set()

    async def stop(self) -> None:
        await asyncio.sleep(0)
        self._journal.append(f"stop {self._name}")
        if self._fail_stop:
            raise RuntimeError("stuck")


def test_a_recorded_component_is_a_component() -> None:
    assert isinstance(Recorded("a", []), Component)


async def test_start_in_order_and_stop_in_reverse() -> None:
    journal: list[str] = []
    host = ComponentHost([Recorded(n, journal) for n in ("grpc", "http", "watcher")])
    await host.start()
    await host.stop()
    assert journal == [
        "start grpc",
        "start http",
        "start watcher",
        "stop watcher",
        "stop http",
        "stop grpc",
    ]


async def test_failed_start_rolls_back_started_components_in_reverse() -> None:
    journal: list[str] = []
    host = ComponentHost(
        [
            Recorded("a", journal),
            Recorded("b", journal),
            Recorded("c", journal, fail_start=True),
            Recorded("d", journal),
        ]
    )
    with pytest.raises(StartupError, match="c failed to start: port in use") as caught:
        await host.start()
    assert caught.value.component == "c"
    assert isinstance(caught.value.__cause__, OSError)
    assert journal == ["start a", "start b", "stop b", "stop a"]


async def test_stop_is_idempotent_even_when_called_concurrently() -> None:
    journal: list[str] = []
    host = ComponentHost([Recorded("a", journal), Recorded("b", journal)])
    await host.start()
    await asyncio.gather(host.stop(), host.stop())
    await host.stop()
    assert journal == ["start a", "start b", "stop b", "stop a"]


async def test_stop_keeps_going_past_a_failing_component() -> None:
    journal: list[str] = []
    host = ComponentHost([Recorded("a", journal), Recorded("b", journal, fail_stop=True)])
    await host.start()
    await host.stop()
    assert journal == ["start a", "start b", "stop b", "stop a"]


async def test_run_serves_until_request_stop_then_stops_everything() -> None:
    journal: list[str] = []
    last = Recorded("b", journal)
    host = ComponentHost([Recorded("a", journal), last])
    running = asyncio.create_task(host.run(handle_signals=False))
    await asyncio.wait_for(last.started.wait(), 10)
    await asyncio.sleep(0.05)  # serving: run() must still be waiting for a stop request
    assert not running.done()
    host.request_stop()
    await asyncio.wait_for(running, 10)
    assert journal == ["start a", "start b", "stop b", "stop a"]


async def test_run_propagates_a_failed_start() -> None:
    journal: list[str] = []
    host = ComponentHost([Recorded("a", journal), Recorded("b", journal, fail_start=True)])
    with pytest.raises(StartupError):
        await host.run(handle_signals=False)
    assert journal == ["start a", "stop a"]


def test_components_are_listed_in_start_order() -> None:
    first, second = Recorded("x", []), Recorded("y", [])
    host = ComponentHost([first, second])
    assert [c.name for c in host.components] == ["x", "y"]
