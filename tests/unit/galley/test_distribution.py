"""The MCP distributor without gRPC: push rules, resume, NACK, isolation, metrics, status."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from services.galley.core.distribution import (
    Distributor,
    InvalidRequestError,
    Push,
    Subscription,
    SubscriptionClosedError,
    SyncState,
    UnknownCollectionError,
)
from shared.contracts.mcp.snapshot import CollectionSnapshot, McpResource

VS = "istio/networking/v1alpha3/virtualservices"
DR = "istio/networking/v1alpha3/destinationrules"


def snap(collection: str, version: str, resources: Mapping[str, str]) -> CollectionSnapshot:
    """A snapshot whose resources are ``name → resource version``."""
    return CollectionSnapshot(
        collection=collection,
        version=version,
        resources={
            name: McpResource(name=name, version=rv, body={"hosts": [name], "rev": rv})
            for name, rv in resources.items()
        },
    )


class Metrics:
    """Reads what the distributor recorded through a real SDK meter."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader], shutdown_on_exit=False)

    def points(self, name: str) -> list[tuple[dict[str, object], object]]:
        data = self.reader.get_metrics_data()
        found: list[tuple[dict[str, object], object]] = []
        for resource_metrics in data.resource_metrics if data else []:
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found += [(dict(p.attributes or {}), p) for p in metric.data.data_points]
        return found

    def value(self, name: str, **attributes: str) -> int:
        return sum(
            int(getattr(point, "value", 0))
            for attrs, point in self.points(name)
            if attrs == attributes
        )


@pytest.fixture
def meter_metrics() -> Iterator[Metrics]:
    metrics = Metrics()
    yield metrics
    metrics.provider.shutdown()


@pytest.fixture
def distributor(meter_metrics: Metrics) -> Distributor:
    return Distributor(meter=meter_metrics.provider.get_meter("splitmesh.galley"))


async def no_push(subscription: Subscription) -> bool:
    """True when no push is due (waits briefly; a due push returns at once)."""
    try:
        await asyncio.wait_for(subscription.next_push(), 0.05)
    except TimeoutError:
        return True
    return False


async def push_of(subscription: Subscription) -> Push:
    return await asyncio.wait_for(subscription.next_push(), 5)


def names(push: Push) -> list[str]:
    return [resource.name for resource in push.resources]


async def test_first_publish_reaches_a_waiting_subscriber_as_a_full_snapshot(
    distributor: Distributor,
) -> None:
    sub = distributor.subscribe("pilot")
    sub.subscribe(VS, {}, True)
    waiting = asyncio.create_task(sub.next_push())
    await asyncio.sleep(0.01)
    assert not waiting.done()

    distributor.publish({VS: snap(VS, "v1", {"default/a": "1", "default/b": "1"})})
    push = await asyncio.wait_for(waiting, 5)

    assert (push.collection, push.version, push.incremental) == (VS, "v1", False)
    assert names(push) == ["default/a", "default/b"]
    assert push.resources[0].body == {"hosts": ["default/a"], "rev": "1"}


async def test_one_push_outstanding_then_the_newest_snapshot(
    distributor: Distributor, meter_metrics: Metrics
) -> None:
    sub = distributor.subscribe("pilot")
    sub.subscribe(VS, {}, False)
    distributor.publish({VS: snap(VS, "v1", {"default/a": "1"})})
    first = await push_of(sub)

    for version in ("v2", "v3", "v4"):
        distributor.publish({VS: snap(VS, version, {"default/a": version})})
    assert await no_push(sub)

    sub.ack(VS, first.nonce)
    second = await push_of(sub)
    assert second.version == "v4"
    assert second.nonce != first.nonce
    assert meter_metrics.value("galley.mcp.pushes", collection=VS) == 2
    assert meter_metrics.value("galley.mcp.acks", collection=VS) == 1


async def test_stale_or_unknown_nonce_is_ignored_and_counted(
    distributor: Distributor, meter_metrics: Metrics
) -> None:
    sub = distributor.subscribe("pilot")
    sub.subscribe(VS, {}, False)
    distributor.publish({VS: snap(VS, "v1", {"default/a": "1"})})
    push = await push_of(sub)

    sub.ack(VS, "not-a-nonce")
    sub.ack(DR, push.nonce)  # a known collection this stream never subscribed to
    distributor.publish({VS: snap(VS, "v2", {"default/a": "2"})})
    assert await no_push(sub)
    assert meter_metrics.value("galley.mcp.stale_nonces") == 2
    watch = distributor.status().subscribers[0].watches[VS]
    assert (watch.state, watch.outstanding_nonce) == (SyncState.SENT, push.nonce)

    sub.ack(VS, push.nonce)
    sub.ack(VS, push.nonce)  # a repeated ACK is stale too
    assert (await push_of(sub)).version == "v2"
    assert meter_metrics.value("galley.mcp.stale_nonces") == 3


async def test_nack_is_logged_counted_and_not_resent_until_the_version_changes(
    distributor: Distributor, meter_metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    sub = distributor.subscribe("mixer-7")
    sub.subscribe(VS, {}, False)
    distributor.publish({VS: snap(VS, "v1", {"default/a": "1"})})
    push = await push_of(sub)

    with caplog.at_level(logging.WARNING):
        sub.nack(VS, push.nonce, "spec.hosts: bad host")
    assert "mixer-7" in caplog.text
    assert "spec.hosts: bad host" in caplog.text
    assert meter_metrics.value("galley.mcp.nacks", collection=VS) == 1

    distributor.publish({VS: snap(VS, "v1", {"default/a": "1"})})  # same version again
    assert await no_push(sub)
    watch = distributor.status().subscribers[0].watches[VS]
    assert watch.state is SyncState.NACKED
    assert (watch.nacked_version, watch.last_error) == ("v1", "spec.hosts: bad host")
    assert watch.acked_version is None

    distributor.publish({VS: snap(VS, "v2", {"default/a": "2"})})
    assert (await push_of(sub)).version == "v2"


async def test_resume_with_current_versions_gets_an_empty_incremental_push(
    distributor: Distributor,
) -> None:
    current = snap(VS, "v7", {"default/a": "1", "default/b": "3"})
    distributor.publish({VS: current})
    sub = distributor.subscribe("pilot")
    sub.subscribe(VS, current.resource_versions(), True)

    push = await push_of(sub)
    assert (push.version, push.incremental, push.resources, push.removed) == ("v7", True, (), ())
    sub.ack(VS, push.nonce)
    assert await no_push(sub)


async def test_resume_with_older_versions_gets_only_the_changes(
    distributor: Distributor,
) -> None:
    distributor.publish({VS: snap(VS, "v2", {"default/a": "1", "default/b": "2", "ns/d": "1"})})
    sub = distributor.subscribe("pilot")
    sub.subscribe(VS, {"default/a": "1", "default/b": "1", "default/c": "1"}, True)

    push = await push_of(sub)
    assert push.incremental
    assert names(push) == ["default/b", "ns/d"]
    assert push.removed == ("default/c",)


async def test_non_incremental_resume_always_gets_the_full_snapshot(
    distributor: Distributor,
) -> None:
    current = snap(VS, "v1", {"default/a": "1", "default/b": "1"})
    distributor.publish({VS: current})
    sub = distributor.subscribe("mixer")
    sub.subscribe(VS, current.resource_versions(), False)

    push = await push_of(sub)
    assert (push.incremental, names(push)) == (False, ["default/a", "default/b"])


async def test_incremental_pushes_diff_against_what_the_sink_accepted(
    distributor: Distributor,
) -> None:
    sub = distributor.subscribe("pilot")
    sub.subscribe(VS, {}, True)
    distributor.publish({VS: snap(VS, "v1", {"default/a": "1", "default/b": "1"})})
    first = await push_of(sub)
    assert not first.incremental
    sub.ack(VS, first.nonce)

    distributor.publish({VS: snap(VS, "v2", {"default/a": "2", "default/b": "1"})})
    rejected = await push_of(sub)
    assert (rejected.incremental, names(rejected)) == (True, ["default/a"])
    sub.nack(VS, rejected.nonce, "no")

    # The sink still holds v1, so the next diff is against v1, not the rejected v2.
    distributor.publish({VS: snap(VS, "v3", {"default/a": "2"})})
    third = await push_of(sub)
    assert (names(third), third.removed) == (["default/a"], ("default/b",))


async def test_unpublished_collection_waits_while_others_flow(distributor: Distributor) -> None:
    sub = distributor.subscribe("pilot")
    sub.subscribe(DR, {}, False)
    sub.subscribe(VS, {}, False)
    distributor.publish({VS: snap(VS, "v1", {"default/a": "1"})})
    assert (await push_of(sub)).collection == VS
    assert await no_push(sub)
    assert distributor.status().subscribers[0].watches[DR].state is SyncState.WAITING

    distributor.publish({DR: snap(DR, "d1", {})})
    push = await push_of(sub)
    assert (push.collection, push.version, push.resources) == (DR, "d1", ())


async def test_malformed_requests_are_rejected(distributor: Distributor) -> None:
    sub = distributor.subscribe("pilot")
    with pytest.raises(UnknownCollectionError, match="istio/nope/v1/things"):
        sub.subscribe("istio/nope/v1/things", {}, True)
    with pytest.raises(InvalidRequestError, match="no collection"):
        sub.subscribe("", {}, True)
    with pytest.raises(InvalidRequestError, match="no collection"):
        sub.ack("", "1")
    sub.subscribe(VS, {}, True)
    with pytest.raises(InvalidRequestError, match="twice"):
        sub.subscribe(VS, {}, True)


async def test_a_subscriber_that_never_acks_delays_nobody(distributor: Distributor) -> None:
    stuck = distributor.subscribe("stuck")
    stuck.subscribe(VS, {}, False)
    healthy = distributor.subscribe("healthy")
    healthy.subscribe(VS, {}, False)

    for n in range(1, 6):
        distributor.publish({VS: snap(VS, f"v{n}", {"default/a": str(n)})})
        push = await push_of(healthy)
        assert push.version == f"v{n}"
        healthy.ack(VS, push.nonce)

    assert (await push_of(stuck)).version == "v5"
    by_sink = {s.sink_id: s.watches[VS] for s in distributor.status().subscribers}
    assert by_sink["healthy"].pushes == 5
    assert by_sink["healthy"].acked_version == "v5"
    assert by_sink["stuck"].pushes == 1


async def test_closing_ends_the_subscription(
    distributor: Distributor, meter_metrics: Metrics
) -> None:
    first = distributor.subscribe("a")
    distributor.subscribe("b")
    assert meter_metrics.value("galley.mcp.subscribers") == 2

    waiting = asyncio.create_task(first.next_push())
    await asyncio.sleep(0)
    first.close()
    first.close()
    with pytest.raises(SubscriptionClosedError):
        await asyncio.wait_for(waiting, 5)
    assert meter_metrics.value("galley.mcp.subscribers") == 1
    assert [s.sink_id for s in distributor.status().subscribers] == ["b"]


async def test_push_latency_and_published_versions_are_reported(
    distributor: Distributor, meter_metrics: Metrics
) -> None:
    sub = distributor.subscribe("pilot")
    sub.subscribe(VS, {}, False)
    distributor.publish({VS: snap(VS, "v1", {"default/a": "1"})})
    await push_of(sub)

    [(attributes, point)] = meter_metrics.points("galley.mcp.push_latency")
    assert attributes == {"collection": VS}
    assert getattr(point, "count", 0) == 1
    assert 0 <= getattr(point, "sum", -1) < 5
    assert distributor.status().published == {VS: "v1"}


def test_publishing_a_snapshot_under_another_collection_is_refused(
    distributor: Distributor,
) -> None:
    with pytest.raises(ValueError, match="published as"):
        distributor.publish({VS: snap(VS, "v1", {}), DR: snap(VS, "v1", {})})
    assert distributor.status().published == {}
