"""MCP distribution: the newest snapshot of each collection, pushed to every subscriber.

:class:`Distributor` implements :class:`services.galley.ports.SnapshotPublisher`. It keeps
the current :class:`CollectionSnapshot` per collection; :meth:`Distributor.publish`
replaces the given collections and wakes every :class:`Subscription`. A subscription is
one sink's stream (the gRPC adapter makes one per ``EstablishResourceStream``): requests
go in (:meth:`Subscription.subscribe`, :meth:`~Subscription.ack`, :meth:`~Subscription.nack`)
and pushes come out (:meth:`Subscription.next_push`). The push rules (one outstanding per
collection, coalescing to the newest snapshot, resume, incremental) are those of
:mod:`services.galley.core.distribution_watch`.

- A stale or unknown nonce is ignored and counted. A NACK is logged with the sink's error
  and counted; the collection is not re-sent until its version changes.
- A collection that is not published yet waits: its first push follows its first publish.
  A collection Galley does not know at all is a :class:`UnknownCollectionError` for that
  stream only.
- The distributor is a Component: :meth:`Distributor.stop` closes every subscription and
  every later one at once, so MCP streams (which never end on their own) end before the
  gRPC server's graceful stop instead of holding it for its whole grace period.

Errors::

    DistributionError
     ├── RequestError              a sink's request this stream cannot honour
     │    ├── UnknownCollectionError   not a collection of any supported kind
     │    └── InvalidRequestError      empty collection name, collection subscribed twice
     └── SubscriptionClosedError   next_push() on a closed subscription

Task safety: everything runs on the event loop thread and nothing blocks. No lock is shared
between subscriptions: ``publish()`` only sets each subscription's own wake-up event, so a
sink that never ACKs delays nobody else. Exactly one task may await ``next_push()`` of a
subscription. Memory is bounded: per subscription and collection a watch holds a reference
to the snapshot it pushed and one nonce; there are no queues.

Metrics (OpenTelemetry meter ``splitmesh.galley``): ``galley.mcp.pushes``,
``galley.mcp.acks``, ``galley.mcp.nacks`` (by collection), ``galley.mcp.stale_nonces``,
``galley.mcp.subscribers`` and ``galley.mcp.push_latency`` — seconds from ``publish()`` (or
from the subscribe, if later) to the push being handed to the stream.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry import metrics

from services.galley.core.distribution_watch import Push, SyncState, Watch, WatchStatus
from shared.config import kinds_by_collection
from shared.contracts.mcp.snapshot import CollectionSnapshot

__all__ = [
    "DistributionError",
    "DistributionStatus",
    "Distributor",
    "InvalidRequestError",
    "Push",
    "RequestError",
    "SubscriberStatus",
    "Subscription",
    "SubscriptionClosedError",
    "SyncState",
    "UnknownCollectionError",
    "WatchStatus",
]

_log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class DistributionError(Exception):
    """Base of the distributor's errors."""


class RequestError(DistributionError):
    """A sink sent a request this stream cannot honour; the stream should end."""


class UnknownCollectionError(RequestError):
    """The collection is not the collection of any kind Galley supports."""


class InvalidRequestError(RequestError):
    """The request is malformed (empty collection, a collection subscribed twice)."""


class SubscriptionClosedError(DistributionError):
    """The subscription was closed; no more pushes will come."""


@dataclass(frozen=True, slots=True)
class SubscriberStatus:
    """One subscription as /debug/syncz shows it; ``watches`` is keyed by collection."""

    stream_id: int
    sink_id: str
    watches: dict[str, WatchStatus]


@dataclass(frozen=True, slots=True)
class DistributionStatus:
    """Published versions (collection → version) and every subscription's state."""

    published: dict[str, str]
    subscribers: tuple[SubscriberStatus, ...]


@dataclass(frozen=True, slots=True)
class _Published:
    snapshot: CollectionSnapshot
    published_at: float


class _Metrics:
    """The distributor's instruments (no-ops until an SDK meter provider is installed)."""

    def __init__(self, meter: metrics.Meter) -> None:
        self.pushes = meter.create_counter(
            "galley.mcp.pushes", unit="{push}", description="MCP pushes sent, by collection"
        )
        self.push_latency = meter.create_histogram(
            "galley.mcp.push_latency",
            unit="s",
            description="Time from publish (or subscribe) to the push being sent",
            explicit_bucket_boundaries_advisory=_LATENCY_BUCKETS,
        )
        self.subscribers = meter.create_up_down_counter(
            "galley.mcp.subscribers", unit="{stream}", description="Open MCP subscriptions"
        )
        self.acks = meter.create_counter(
            "galley.mcp.acks", unit="{ack}", description="MCP pushes ACKed, by collection"
        )
        self.nacks = meter.create_counter(
            "galley.mcp.nacks", unit="{nack}", description="MCP pushes NACKed, by collection"
        )
        self.stale_nonces = meter.create_counter(
            "galley.mcp.stale_nonces",
            unit="{request}",
            description="ACKs/NACKs ignored because their nonce was stale or unknown",
        )


class _Hub:
    """What a distributor shares with its subscriptions: snapshots, registry, nonces, metrics."""

    def __init__(self, metrics_: _Metrics) -> None:
        self.metrics = metrics_
        self.current: dict[str, _Published] = {}
        self.subscriptions: dict[int, Subscription] = {}
        self._nonces = itertools.count(1)

    def next_nonce(self) -> str:
        return str(next(self._nonces))

    def forget(self, subscription: Subscription) -> None:
        if self.subscriptions.pop(subscription.stream_id, None) is not None:
            self.metrics.subscribers.add(-1)


class Subscription:
    """One sink's stream. Created by :meth:`Distributor.subscribe`; close it when done."""

    def __init__(self, *, sink_id: str, stream_id: int, hub: _Hub) -> None:
        self.sink_id = sink_id
        self.stream_id = stream_id
        self._hub = hub
        self._metrics = hub.metrics
        self._watches: dict[str, Watch] = {}
        self._wake = asyncio.Event()
        self._closed = False

    def subscribe(
        self, collection: str, initial_versions: Mapping[str, str], incremental: bool
    ) -> None:
        """Start watching ``collection``; the sink holds ``initial_versions`` (name → version).

        Raises :class:`InvalidRequestError` or :class:`UnknownCollectionError`.
        """
        _check_collection(collection)
        if collection in self._watches:
            raise InvalidRequestError(f"collection {collection!r} subscribed twice")
        self._watches[collection] = Watch(
            collection, initial_versions, incremental=incremental, subscribed_at=time.monotonic()
        )
        _log.info(
            "sink %s (stream %d) subscribed to %s (incremental=%s, holds %d resources)",
            self.sink_id,
            self.stream_id,
            collection,
            incremental,
            len(initial_versions),
        )
        self._wake.set()

    def ack(self, collection: str, nonce: str) -> None:
        """The sink accepted the push ``nonce`` of ``collection`` (stale nonces are ignored).

        Raises like :meth:`subscribe` when ``collection`` is empty or unknown.
        """
        _check_collection(collection)
        watch = self._watches.get(collection)
        version = None if watch is None else watch.ack(nonce)
        if version is None:
            self._stale(collection, nonce)
            return
        self._metrics.acks.add(1, {"collection": collection})
        self._wake.set()

    def nack(self, collection: str, nonce: str, message: str) -> None:
        """The sink rejected the push ``nonce`` of ``collection`` because of ``message``.

        Raises like :meth:`subscribe` when ``collection`` is empty or unknown.
        """
        _check_collection(collection)
        watch = self._watches.get(collection)
        version = None if watch is None else watch.nack(nonce, message)
        if version is None:
            self._stale(collection, nonce)
            return
        self._metrics.nacks.add(1, {"collection": collection})
        _log.warning(
            "sink %s (stream %d) rejected %s version %s: %s",
            self.sink_id,
            self.stream_id,
            collection,
            version,
            message,
        )
        self._wake.set()

    async def next_push(self) -> Push:
        """Wait for the next push due on any watched collection and mark it outstanding.

        Raises :class:`SubscriptionClosedError` once :meth:`close` was called. Cancelling the
        wait loses nothing: a push is only marked outstanding when it is returned.
        """
        while True:
            if self._closed:
                raise SubscriptionClosedError(f"subscription of sink {self.sink_id} is closed")
            self._wake.clear()
            push = self._take_due()
            if push is not None:
                return push
            await self._wake.wait()

    def close(self) -> None:
        """End the subscription: wakes ``next_push`` with an error. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._hub.forget(self)

    def status(self) -> SubscriberStatus:
        """This subscription's state per collection."""
        return SubscriberStatus(
            stream_id=self.stream_id,
            sink_id=self.sink_id,
            watches={name: watch.status() for name, watch in self._watches.items()},
        )

    def wake(self) -> None:
        """Tell ``next_push`` that published snapshots changed (called by the distributor)."""
        self._wake.set()

    def _take_due(self) -> Push | None:
        for collection, watch in self._watches.items():
            published = self._hub.current.get(collection)
            if published is None or not watch.is_due(published.snapshot):
                continue
            push = watch.take_push(published.snapshot, self._hub.next_nonce())
            latency = time.monotonic() - max(published.published_at, watch.subscribed_at)
            attributes = {"collection": collection}
            self._metrics.pushes.add(1, attributes)
            self._metrics.push_latency.record(latency, attributes)
            return push
        return None

    def _stale(self, collection: str, nonce: str) -> None:
        self._metrics.stale_nonces.add(1)
        _log.debug(
            "sink %s (stream %d): ignoring stale nonce %r for %s",
            self.sink_id,
            self.stream_id,
            nonce,
            collection,
        )


def _check_collection(collection: str) -> None:
    if not collection:
        raise InvalidRequestError("the request names no collection")
    if collection not in kinds_by_collection():
        raise UnknownCollectionError(f"unknown collection {collection!r}")


class Distributor:
    """Holds the current snapshot per collection and serves :class:`Subscription` streams.

    ``meter`` defaults to ``opentelemetry.metrics.get_meter("splitmesh.galley")``.
    """

    def __init__(self, *, meter: metrics.Meter | None = None) -> None:
        self._hub = _Hub(_Metrics(meter or metrics.get_meter("splitmesh.galley")))
        self._stream_ids = itertools.count(1)
        self._stopped = False

    @property
    def name(self) -> str:
        """Component name for logs."""
        return "mcp-distributor"

    async def start(self) -> None:
        """Nothing to start: subscriptions come from the MCP servicer."""

    async def stop(self) -> None:
        """Close every subscription, now and from now on (their streams end). Idempotent."""
        self._stopped = True
        for subscription in list(self._hub.subscriptions.values()):
            subscription.close()

    def publish(self, snapshots: Mapping[str, CollectionSnapshot]) -> None:
        """Make these the current snapshots of their collections and wake every subscriber.

        Raises :class:`ValueError` (publishing nothing) if a snapshot is keyed under another
        collection than its own.
        """
        for collection, snapshot in snapshots.items():
            if snapshot.collection != collection:
                raise ValueError(f"snapshot of {snapshot.collection} published as {collection}")
        now = time.monotonic()
        for collection, snapshot in snapshots.items():
            self._hub.current[collection] = _Published(snapshot, now)
        for subscription in self._hub.subscriptions.values():
            subscription.wake()

    def subscribe(self, sink_id: str) -> Subscription:
        """Open a subscription for ``sink_id``; the caller must :meth:`Subscription.close` it.

        After :meth:`stop` the subscription comes back already closed.
        """
        subscription = Subscription(
            sink_id=sink_id, stream_id=next(self._stream_ids), hub=self._hub
        )
        self._hub.subscriptions[subscription.stream_id] = subscription
        self._hub.metrics.subscribers.add(1)
        if self._stopped:
            subscription.close()
        return subscription

    def status(self) -> DistributionStatus:
        """Published versions and each subscription's per-collection state."""
        return DistributionStatus(
            published={name: p.snapshot.version for name, p in self._hub.current.items()},
            subscribers=tuple(s.status() for s in self._hub.subscriptions.values()),
        )
