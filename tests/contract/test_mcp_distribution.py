"""MCP end to end: a real grpc.aio server with Galley's servicer, the real McpClient as sink."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc
import pytest

from services.galley.adapters.mcp_server import register
from services.galley.core.distribution import Distributor, SyncState
from shared.contracts.mcp.client import McpClient, SnapshotHandler
from shared.contracts.mcp.snapshot import CollectionSnapshot, McpResource
from shared.contracts.mcp.v1 import mcp_pb2, mcp_pb2_grpc

VS = "istio/networking/v1alpha3/virtualservices"
DR = "istio/networking/v1alpha3/destinationrules"


def snap(collection: str, version: str, resources: Mapping[str, str]) -> CollectionSnapshot:
    """A snapshot whose resources are ``name → resource version``."""
    return CollectionSnapshot(
        collection=collection,
        version=version,
        resources={
            name: McpResource(
                name=name,
                version=rv,
                body={"hosts": [name.split("/")[1]], "http": [{"timeout": "1s", "retries": 3}]},
                labels={"rev": rv},
                annotations={"note": f"{name}@{rv}"},
            )
            for name, rv in resources.items()
        },
    )


async def start_server(distributor: Distributor, port: int = 0) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    register(server, distributor)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, bound


class Recorder:
    """A handler that records every snapshot it is given (and can be made to fail or block)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.fail_on: set[str] = set()
        self.block_on: set[str] = set()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.in_flight = 0
        self.max_in_flight = 0

    async def __call__(self, snapshot: CollectionSnapshot) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self.seen.append(snapshot.version)
            if snapshot.version in self.fail_on:
                raise ValueError(f"cannot apply {snapshot.version}: spec.hosts is invalid")
            if snapshot.version in self.block_on:
                self.entered.set()
                await self.release.wait()
        finally:
            self.in_flight -= 1


ClientFactory = Callable[..., Awaitable[McpClient]]


@pytest.fixture
async def galley() -> AsyncIterator[tuple[Distributor, int]]:
    distributor = Distributor()
    server, port = await start_server(distributor)
    yield distributor, port
    await server.stop(None)


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    clients: list[McpClient] = []

    async def make(
        port: int,
        handler: SnapshotHandler,
        *,
        collections: tuple[str, ...] = (VS,),
        sink: str = "s",
    ) -> McpClient:
        client = McpClient(
            target=f"127.0.0.1:{port}",
            sink_id=sink,
            collections=collections,
            handler=handler,
            initial_backoff=0.05,
            max_backoff=0.2,
        )
        clients.append(client)
        await client.start()
        return client

    yield make
    for client in clients:
        await client.stop()


def version_is(version: str) -> Callable[[CollectionSnapshot], bool]:
    return lambda snapshot: snapshot.version == version


async def eventually(condition: Callable[[], bool]) -> None:
    """Poll until ``condition()`` holds (for states that have no event to wait on), up to 10 s."""
    async with asyncio.timeout(10):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


def watch_of(distributor: Distributor, sink: str, collection: str = VS) -> Any:
    [subscriber] = [s for s in distributor.status().subscribers if s.sink_id == sink]
    return subscriber.watches[collection]


async def test_snapshot_changes_and_removals_reach_the_client(
    galley: tuple[Distributor, int], make_client: ClientFactory
) -> None:
    distributor, port = galley
    first = snap(VS, "v1", {"default/reviews": "1", "default/ratings": "1"})
    distributor.publish({VS: first, DR: snap(DR, "d1", {"default/reviews": "1"})})
    client = await make_client(port, Recorder(), collections=(VS, DR), sink="pilot")

    assert await client.wait_for(VS, version_is("v1"), 10) == first
    await client.wait_for(DR, version_is("d1"), 10)
    assert client.has_synced()
    body = client.snapshots()[VS].resources["default/reviews"].body
    assert body["http"][0]["retries"] == 3
    assert isinstance(body["http"][0]["retries"], int)

    changed = snap(VS, "v2", {"default/reviews": "2", "default/ratings": "1"})
    distributor.publish({VS: changed})
    assert await client.wait_for(VS, version_is("v2"), 10) == changed

    removed = snap(VS, "v3", {"default/reviews": "2"})
    distributor.publish({VS: removed})
    assert await client.wait_for(VS, version_is("v3"), 10) == removed
    assert client.snapshots()[DR].version == "d1"


async def test_a_rejected_push_is_nacked_and_the_next_version_still_arrives(
    galley: tuple[Distributor, int], make_client: ClientFactory
) -> None:
    distributor, port = galley
    recorder = Recorder()
    recorder.fail_on.add("v2")
    distributor.publish({VS: snap(VS, "v1", {"default/a": "1"})})
    client = await make_client(port, recorder, sink="mixer")
    await client.wait_for(VS, version_is("v1"), 10)

    distributor.publish({VS: snap(VS, "v2", {"default/a": "2"})})
    await eventually(lambda: watch_of(distributor, "mixer").state is SyncState.NACKED)
    watch = watch_of(distributor, "mixer")
    assert watch.nacked_version == "v2"
    assert watch.last_error == "cannot apply v2: spec.hosts is invalid"
    assert watch.acked_version == "v1"
    assert client.snapshots()[VS].version == "v1"

    distributor.publish({VS: snap(VS, "v3", {"default/a": "3"})})
    await client.wait_for(VS, version_is("v3"), 10)
    assert recorder.seen == ["v1", "v2", "v3"]


async def test_a_stuck_client_does_not_delay_another(
    galley: tuple[Distributor, int], make_client: ClientFactory
) -> None:
    distributor, port = galley
    stuck = Recorder()
    stuck.block_on.add("v1")
    distributor.publish({VS: snap(VS, "v1", {"default/a": "1"})})
    await make_client(port, stuck, sink="stuck")
    await asyncio.wait_for(stuck.entered.wait(), 10)
    healthy = Recorder()
    client = await make_client(port, healthy, sink="healthy")

    for n in range(1, 6):
        distributor.publish({VS: snap(VS, f"v{n}", {"default/a": str(n)})})
        await client.wait_for(VS, version_is(f"v{n}"), 10)

    assert healthy.seen == ["v1", "v2", "v3", "v4", "v5"]
    assert stuck.seen == ["v1"]
    assert watch_of(distributor, "stuck").state is SyncState.SENT


async def test_client_resumes_incrementally_after_galley_restarts_on_the_same_port(
    make_client: ClientFactory,
) -> None:
    old = Distributor()
    server, port = await start_server(old)
    old.publish({VS: snap(VS, "v1", {"default/a": "1", "default/b": "1", "default/c": "1"})})
    client = await make_client(port, Recorder(), sink="pilot")
    await client.wait_for(VS, version_is("v1"), 10)
    await server.stop(None)

    new = Distributor()
    expected = snap(VS, "v2", {"default/a": "1", "default/b": "2", "default/d": "1"})
    new.publish({VS: expected})
    server, _ = await start_server(new, port)
    try:
        assert await client.wait_for(VS, version_is("v2"), 10) == expected
        watch = watch_of(new, "pilot")
        assert watch.last_push_incremental is True
        assert watch.last_push_resources == 2  # b changed and d added; a was already held
    finally:
        await server.stop(None)


async def test_client_started_before_galley_connects_once_it_is_up(
    make_client: ClientFactory,
) -> None:
    distributor = Distributor()
    server, port = await start_server(distributor)
    await server.stop(None)

    client = await asyncio.wait_for(make_client(port, Recorder()), 1)
    await eventually(lambda: client.last_error is not None)
    assert client.last_error.startswith("UNAVAILABLE")
    assert not client.has_synced()

    distributor.publish({VS: snap(VS, "v1", {"default/a": "1"})})
    server, _ = await start_server(distributor, port)
    try:
        await client.wait_for(VS, version_is("v1"), 10)
    finally:
        await server.stop(None)


async def test_unknown_collection_ends_only_that_stream(
    galley: tuple[Distributor, int], make_client: ClientFactory
) -> None:
    distributor, port = galley
    distributor.publish({VS: snap(VS, "v1", {"default/a": "1"})})
    other = await make_client(port, Recorder(), sink="other")
    await other.wait_for(VS, version_is("v1"), 10)

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = mcp_pb2_grpc.ResourceSourceStub(channel)
        for bad, message in (("istio/bogus/v1/things", "istio/bogus/v1/things"), ("", "no coll")):
            call = stub.EstablishResourceStream()
            await call.write(mcp_pb2.RequestResources(collection=VS))
            assert (await call.read()).system_version_info == "v1"
            await call.write(mcp_pb2.RequestResources(collection=bad))
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await call.read()
            assert failure.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert message in (failure.value.details() or "")

    bogus = await make_client(port, Recorder(), collections=(VS, "istio/bogus/v1/x"))
    await eventually(lambda: bogus.last_error is not None)
    assert "INVALID_ARGUMENT" in bogus.last_error
    assert "istio/bogus/v1/x" in bogus.last_error

    distributor.publish({VS: snap(VS, "v2", {"default/a": "2"})})
    await other.wait_for(VS, version_is("v2"), 10)


async def test_one_push_outstanding_coalesces_to_the_newest_version(
    galley: tuple[Distributor, int], make_client: ClientFactory
) -> None:
    distributor, port = galley
    slow = Recorder()
    slow.block_on.add("v1")
    distributor.publish({VS: snap(VS, "v1", {"default/a": "1"})})
    client = await make_client(port, slow, sink="slow")
    await asyncio.wait_for(slow.entered.wait(), 10)

    for n in range(2, 6):
        distributor.publish({VS: snap(VS, f"v{n}", {"default/a": str(n)})})
    watch = watch_of(distributor, "slow")
    assert (watch.state, watch.sent_version, watch.pushes) == (SyncState.SENT, "v1", 1)

    slow.release.set()
    await client.wait_for(VS, version_is("v5"), 10)
    assert slow.seen == ["v1", "v5"]
    assert slow.max_in_flight == 1
    assert watch_of(distributor, "slow").pushes == 2


async def test_streams_release_their_subscription_when_they_end(
    galley: tuple[Distributor, int], make_client: ClientFactory
) -> None:
    distributor, port = galley
    distributor.publish({VS: snap(VS, "v1", {"default/a": "1"})})
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = mcp_pb2_grpc.ResourceSourceStub(channel).EstablishResourceStream()
        await call.write(
            mcp_pb2.RequestResources(sink_node=mcp_pb2.SinkNode(id="raw"), collection=VS)
        )
        push = await call.read()
        await call.write(mcp_pb2.RequestResources(collection=VS, response_nonce=push.nonce))
        await eventually(lambda: watch_of(distributor, "raw").acked_version == "v1")
        await call.done_writing()
        assert await call.read() is grpc.aio.EOF
        assert await call.code() is grpc.StatusCode.OK

    client = await make_client(port, Recorder(), sink="pilot")
    await client.wait_for(VS, version_is("v1"), 10)
    assert [s.sink_id for s in distributor.status().subscribers] == ["pilot"]
    await client.stop()
    await client.stop()
    await eventually(lambda: not distributor.status().subscribers)
