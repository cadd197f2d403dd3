"""ConfigStore: last good versions, withdrawals, duplicates, versions, debounced publishing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint

from services.galley.core.debounce import Debouncer
from services.galley.core.store import ConfigStore
from services.galley.ports import ConfigSink
from shared.config import kinds_by_collection, parse_yaml
from shared.contracts.mcp.snapshot import CollectionSnapshot

DR = "istio/networking/v1alpha3/destinationrules"
VS = "istio/networking/v1alpha3/virtualservices"


def dr(name: str, rev: str = "1", extra: str = "") -> str:
    """A DestinationRule whose validity depends on no per-kind rule; ``rev`` changes it."""
    return (
        "apiVersion: networking.istio.io/v1alpha3\n"
        "kind: DestinationRule\n"
        f"metadata: {{name: {name}, namespace: default, labels: {{rev: '{rev}'}}}}\n"
        f"spec: {{host: {name}.default.svc.cluster.local}}\n"
        f"{extra}"
    )


class RecordingPublisher:
    """A SnapshotPublisher that records every publish."""

    def __init__(self) -> None:
        self.calls: list[dict[str, CollectionSnapshot]] = []
        self.current: dict[str, CollectionSnapshot] = {}

    def publish(self, snapshots: Mapping[str, CollectionSnapshot]) -> None:
        self.calls.append(dict(snapshots))
        self.current.update(snapshots)

    def served(self, collection: str = DR) -> dict[str, str]:
        """name → rev label of what subscribers now see in ``collection``."""
        resources = self.current[collection].resources
        return {name: resource.labels["rev"] for name, resource in resources.items()}


def feed(store: ConfigSink, source: str, text: str) -> None:
    result = parse_yaml(text, source)
    store.replace_source(source, result.resources, result.issues)


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait (generously, up to 5.0 s) until ``condition`` holds."""
    deadline = asyncio.get_running_loop().time() + 5.0
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
async def store(publisher: RecordingPublisher) -> AsyncIterator[ConfigStore]:
    store = ConfigStore(publisher=publisher, debounce_quiet=0.05, debounce_max=0.2)
    yield store
    await store.stop()


async def test_nothing_is_published_before_sync_then_every_collection_at_once(
    store: ConfigStore, publisher: RecordingPublisher
) -> None:
    feed(store, "reviews.yaml", dr("reviews"))
    await asyncio.sleep(0.3)
    assert publisher.calls == []

    store.mark_synced()

    assert len(publisher.calls) == 1
    assert set(publisher.calls[0]) == set(kinds_by_collection())
    assert publisher.served() == {"default/reviews": "1"}
    assert publisher.current[VS].resources == {}
    assert publisher.current[VS].version  # an empty collection still has a version
    body = publisher.current[DR].resources["default/reviews"].body
    assert body["host"] == "reviews.default.svc.cluster.local"


async def test_an_object_that_becomes_invalid_keeps_its_last_good_version(
    store: ConfigStore, publisher: RecordingPublisher
) -> None:
    feed(store, "reviews.yaml", dr("reviews", "1") + "---\n" + dr("ratings", "1"))
    store.mark_synced()
    good_version = publisher.current[DR].resources["default/reviews"].version

    broken = dr("reviews", "2", extra="bogus: true\n") + "---\n" + dr("ratings", "2")
    feed(store, "reviews.yaml", broken)
    await eventually(lambda: publisher.served() == {"default/reviews": "1", "default/ratings": "2"})

    status = store.status()
    served = {obj.name: (obj.source, obj.version) for obj in status.objects}
    assert served["default/reviews"] == ("reviews.yaml", good_version)
    assert [str(issue) for issue in status.issues] == [
        "reviews.yaml:1: DestinationRule default/reviews: bogus: unknown field"
    ]

    feed(store, "reviews.yaml", dr("reviews", "3") + "---\n" + dr("ratings", "2"))
    await eventually(lambda: publisher.served()["default/reviews"] == "3")
    assert store.status().issues == ()


async def test_a_re_read_keeps_the_warnings_of_unchanged_objects_and_checks_changed_ones(
    store: ConfigStore, publisher: RecordingPublisher
) -> None:
    deprecated = "spec: {host: h.default.svc.cluster.local, trafficPolicy: "
    deprecated += "{outlierDetection: {consecutiveErrors: 5}}}\n"
    warned = dr("warned").replace("spec: {host: warned.default.svc.cluster.local}\n", deprecated)
    feed(store, "a.yaml", warned + "---\n" + dr("other", "1"))
    store.mark_synced()
    (warning,) = store.status().issues
    assert warning.name == "warned" and warning.path.endswith("consecutiveErrors")

    feed(store, "a.yaml", warned + "---\n" + dr("other", "2"))  # only "other" changed
    await eventually(lambda: publisher.served()["default/other"] == "2")
    assert store.status().issues == (warning,)

    feed(store, "a.yaml", warned + "---\n" + dr("other", "3", extra="bogus: true\n"))
    await asyncio.sleep(0.3)
    assert publisher.served()["default/other"] == "2"
    assert [issue.name for issue in store.status().issues] == ["warned", "other"]


async def test_an_invalid_new_object_is_not_served(
    store: ConfigStore, publisher: RecordingPublisher
) -> None:
    feed(store, "a.yaml", dr("reviews") + "---\n" + dr("Not_A_Name"))
    store.mark_synced()

    assert publisher.served() == {"default/reviews": "1"}
    (issue,) = store.status().issues
    assert issue.source == "a.yaml" and issue.path == "metadata.name"


async def test_a_file_level_error_keeps_everything_the_file_served(
    store: ConfigStore, publisher: RecordingPublisher
) -> None:
    feed(store, "a.yaml", dr("reviews") + "---\n" + dr("ratings"))
    store.mark_synced()

    feed(store, "a.yaml", "kind: [unclosed\n")
    await asyncio.sleep(0.3)

    assert len(publisher.calls) == 1
    status = store.status()
    assert [obj.name for obj in status.objects] == ["default/ratings", "default/reviews"]
    (issue,) = status.issues
    assert issue.source == "a.yaml" and "invalid YAML" in issue.message


async def test_objects_missing_from_a_file_are_withdrawn(
    store: ConfigStore, publisher: RecordingPublisher
) -> None:
    feed(store, "a.yaml", dr("reviews") + "---\n" + dr("ratings"))
    feed(store, "b.yaml", dr("details"))
    store.mark_synced()

    feed(store, "a.yaml", dr("reviews"))
    await eventually(lambda: set(publisher.served()) == {"default/reviews", "default/details"})

    store.remove_source("a.yaml")
    await eventually(lambda: set(publisher.served()) == {"default/details"})
    feed(store, "b.yaml", "")
    await eventually(lambda: publisher.served() == {})
    assert store.status().objects == ()


async def test_the_same_object_in_two_files_is_served_from_the_lexically_first(
    store: ConfigStore, publisher: RecordingPublisher
) -> None:
    feed(store, "b.yaml", dr("reviews", "from-b"))
    feed(store, "a.yaml", dr("reviews", "from-a"))
    store.mark_synced()

    assert publisher.served() == {"default/reviews": "from-a"}
    (issue,) = store.status().issues
    assert issue.source == "b.yaml"
    assert "a.yaml" in issue.message and "b.yaml" in issue.message
    assert issue.object_ref == "DestinationRule default/reviews"

    store.remove_source("a.yaml")
    await eventually(lambda: publisher.served() == {"default/reviews": "from-b"})
    assert store.status().issues == ()


async def test_the_same_object_twice_in_one_file_serves_the_first(
    store: ConfigStore, publisher: RecordingPublisher
) -> None:
    feed(store, "a.yaml", dr("reviews", "first") + "---\n" + dr("reviews", "second"))
    store.mark_synced()

    assert publisher.served() == {"default/reviews": "first"}
    (issue,) = store.status().issues
    assert issue.line == 6 and "a.yaml:1" in issue.message


async def test_the_same_files_give_the_same_versions_whatever_the_order() -> None:
    files = {"a.yaml": dr("reviews"), "b.yaml": dr("ratings"), "c.yaml": dr("details", "x")}
    versions = []
    for order in (sorted(files), sorted(files, reverse=True)):
        publisher = RecordingPublisher()
        store = ConfigStore(publisher=publisher)
        feed(store, "c.yaml", "not: [valid")  # a failed read first changes nothing
        for source in order:
            feed(store, source, files[source])
        store.mark_synced()
        versions.append({name: snap.version for name, snap in publisher.current.items()})
        await store.stop()

    assert versions[0] == versions[1]
    other = RecordingPublisher()
    changed = ConfigStore(publisher=other)
    for source, text in {**files, "c.yaml": dr("details", "y")}.items():
        feed(changed, source, text)
    changed.mark_synced()
    assert other.current[DR].version != versions[0][DR]
    assert other.current[VS].version == versions[0][VS]


async def test_only_collections_whose_version_changed_are_published(
    store: ConfigStore, publisher: RecordingPublisher
) -> None:
    feed(store, "a.yaml", dr("reviews"))
    store.mark_synced()
    first = publisher.current[DR].version

    feed(store, "a.yaml", dr("reviews", "2"))
    await eventually(lambda: len(publisher.calls) == 2)
    assert set(publisher.calls[1]) == {DR}
    assert publisher.calls[1][DR].version != first

    feed(store, "a.yaml", dr("reviews", "1"))  # back to the first content: same version
    await eventually(lambda: len(publisher.calls) == 3)
    assert publisher.calls[2][DR].version == first
    assert store.status().versions[DR] == first


async def test_debounce_publishes_a_burst_of_changes_once_it_is_quiet() -> None:
    publisher = RecordingPublisher()
    store = ConfigStore(publisher=publisher, debounce_quiet=0.3, debounce_max=10.0)
    store.mark_synced()
    try:
        for rev in range(5):
            feed(store, "a.yaml", dr("reviews", str(rev)))
            await asyncio.sleep(0.03)
        await eventually(lambda: len(publisher.calls) > 1)
        await asyncio.sleep(0.5)
    finally:
        await store.stop()

    assert len(publisher.calls) == 2  # the sync, then the whole burst at once
    assert publisher.served() == {"default/reviews": "4"}


async def test_debounce_publishes_during_endless_changes_after_the_max_delay() -> None:
    publisher = RecordingPublisher()
    store = ConfigStore(publisher=publisher, debounce_quiet=0.25, debounce_max=0.4)
    store.mark_synced()
    try:
        for rev in range(25):  # about 1.25 s of changes, never quiet for 0.25 s
            feed(store, "a.yaml", dr("reviews", str(rev)))
            await asyncio.sleep(0.05)
        during_burst = len(publisher.calls) - 1
        await eventually(lambda: publisher.served() == {"default/reviews": "24"})
    finally:
        await store.stop()

    assert during_burst >= 1


async def test_rejections_are_logged_one_line_per_issue_and_counted_by_kind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    store = ConfigStore(publisher=RecordingPublisher(), meter=meter)
    text = dr("reviews", extra="bogus: 1\nworse: 2\n") + "---\n" + dr("ratings")
    with caplog.at_level(logging.WARNING, logger="services.galley.core.store"):
        feed(store, "a.yaml", text)
        feed(store, "b.yaml", "{")
    store.mark_synced()
    await store.stop()

    messages = [record.getMessage() for record in caplog.records]
    assert "a.yaml:1: DestinationRule default/reviews: bogus: unknown field" in messages
    assert "a.yaml:1: DestinationRule default/reviews: worse: unknown field" in messages
    assert any(message.startswith("b.yaml:") and "invalid YAML" in message for message in messages)
    assert _points(reader, "galley_rejections_total", "kind") == {"DestinationRule": 1, "file": 1}
    objects = _points(reader, "galley_config_objects", "collection")
    assert objects[DR] == 1 and objects[VS] == 0


async def test_debouncer_stop_is_idempotent_and_drops_pending_changes() -> None:
    flushed: list[float] = []
    debouncer = Debouncer(lambda: flushed.append(1), quiet=0.05, max_delay=0.1)
    debouncer.trigger()
    await debouncer.stop()
    await debouncer.stop()
    debouncer.trigger()
    await asyncio.sleep(0.2)
    assert flushed == []


async def test_debouncer_awaits_async_flushes_and_survives_a_failing_one() -> None:
    calls: list[int] = []

    async def flush() -> None:
        calls.append(len(calls))
        await asyncio.sleep(0)
        if len(calls) == 1:
            raise RuntimeError("boom")

    debouncer = Debouncer(flush, quiet=0.02, max_delay=0.05)
    try:
        debouncer.trigger()
        await eventually(lambda: len(calls) == 1)
        debouncer.trigger()
        await eventually(lambda: len(calls) == 2)
    finally:
        await debouncer.stop()


def _points(reader: InMemoryMetricReader, name: str, attribute: str) -> dict[str, int]:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        str(point.attributes[attribute]): int(point.value)
        for resource_metrics in data.resource_metrics
        for scope in resource_metrics.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
        if isinstance(point, NumberDataPoint) and point.attributes
    }
