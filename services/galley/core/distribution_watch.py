"""One collection on one MCP subscription: what the sink holds, was sent, and is outstanding.

A :class:`Watch` is the whole per-(subscription, collection) state of the distributor: the
resource versions the sink holds (its ``initial_versions``, then what it ACKed), the last
version sent, and the nonce of the one push that may be outstanding. It never copies a
snapshot; it keeps a reference to the one it pushed, so its memory is bounded.

Push rules:

- A push is due when nothing is outstanding and the published version differs from the
  last one sent (so after an ACK or a NACK nothing is re-sent until the version changes).
- The first push always happens once the collection is published, so a resuming sink
  learns the current version even when it already holds every resource.
- When the sink accepts incremental pushes and holds something, a push carries only added
  or changed resources plus removed names; otherwise it carries the full snapshot.
- After a NACK the sink keeps what it held before, and so does the watch.

Not task-safe by itself: a watch belongs to one subscription and is used from the event
loop only. Pure logic: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from shared.contracts.mcp.snapshot import CollectionSnapshot, McpResource


@dataclass(frozen=True, slots=True)
class Push:
    """One ``Resources`` message for one collection, as the source sends it."""

    collection: str
    version: str
    nonce: str
    incremental: bool
    resources: tuple[McpResource, ...]
    removed: tuple[str, ...] = ()


class SyncState(StrEnum):
    """Where a watch stands, as /debug/syncz shows it."""

    WAITING = "waiting"  # nothing sent yet (collection not published yet)
    SENT = "sent"  # a push is outstanding
    ACKED = "acked"  # the last push was ACKed
    NACKED = "nacked"  # the last push was NACKed; nothing re-sent until the version changes


@dataclass(frozen=True, slots=True)
class WatchStatus:
    """A read-only view of one watch."""

    collection: str
    state: SyncState
    incremental: bool
    sent_version: str | None
    acked_version: str | None
    outstanding_nonce: str | None
    nacked_version: str | None
    last_error: str | None
    pushes: int
    last_push_incremental: bool | None
    last_push_resources: int


class Watch:
    """The state of one collection on one subscription."""

    def __init__(
        self,
        collection: str,
        initial_versions: Mapping[str, str],
        *,
        incremental: bool,
        subscribed_at: float,
    ) -> None:
        self.collection = collection
        self.incremental = incremental
        self.subscribed_at = subscribed_at
        self._held: Mapping[str, str] | None = dict(initial_versions) or None
        self._sent_version: str | None = None
        self._acked_version: str | None = None
        self._outstanding: tuple[str, CollectionSnapshot] | None = None
        self._nacked_version: str | None = None
        self._last_error: str | None = None
        self._last_was_nack = False
        self._pushes = 0
        self._last_push: Push | None = None

    def is_due(self, current: CollectionSnapshot | None) -> bool:
        """Whether a push of ``current`` (None: not published yet) should be sent now."""
        return (
            current is not None
            and self._outstanding is None
            and current.version != self._sent_version
        )

    def take_push(self, current: CollectionSnapshot, nonce: str) -> Push:
        """Build the push of ``current`` and mark it outstanding under ``nonce``."""
        held = self._held
        if self.incremental and held is not None:
            changed = tuple(
                resource
                for name, resource in current.resources.items()
                if held.get(name) != resource.version
            )
            removed = tuple(sorted(name for name in held if name not in current.resources))
            push = Push(self.collection, current.version, nonce, True, changed, removed)
        else:
            push = Push(
                self.collection, current.version, nonce, False, tuple(current.resources.values())
            )
        self._outstanding = (nonce, current)
        self._sent_version = current.version
        self._pushes += 1
        self._last_push = push
        return push

    def ack(self, nonce: str) -> str | None:
        """Accept the ACK of ``nonce``; the version it ACKs, or None if the nonce is stale."""
        snapshot = self._settle(nonce)
        if snapshot is None:
            return None
        self._acked_version = snapshot.version
        self._last_was_nack = False
        self._held = snapshot.resource_versions()
        return snapshot.version

    def nack(self, nonce: str, message: str) -> str | None:
        """Accept the NACK of ``nonce``; the version it rejects, or None if the nonce is stale."""
        snapshot = self._settle(nonce)
        if snapshot is None:
            return None
        self._nacked_version = snapshot.version
        self._last_error = message
        self._last_was_nack = True
        return snapshot.version

    def status(self) -> WatchStatus:
        """A snapshot of this watch's state."""
        last = self._last_push
        return WatchStatus(
            collection=self.collection,
            state=self._state(),
            incremental=self.incremental,
            sent_version=self._sent_version,
            acked_version=self._acked_version,
            outstanding_nonce=None if self._outstanding is None else self._outstanding[0],
            nacked_version=self._nacked_version,
            last_error=self._last_error,
            pushes=self._pushes,
            last_push_incremental=None if last is None else last.incremental,
            last_push_resources=0 if last is None else len(last.resources),
        )

    def _settle(self, nonce: str) -> CollectionSnapshot | None:
        if self._outstanding is None or self._outstanding[0] != nonce:
            return None
        snapshot = self._outstanding[1]
        self._outstanding = None
        return snapshot

    def _state(self) -> SyncState:
        if self._sent_version is None:
            return SyncState.WAITING
        if self._outstanding is not None:
            return SyncState.SENT
        if self._last_was_nack:
            return SyncState.NACKED
        return SyncState.ACKED
