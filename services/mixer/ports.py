"""The narrow interfaces Mixer's core consumes.

- :class:`ConfigFeed` is where config comes from: Galley over MCP in the split deployment
  (:class:`shared.contracts.mcp.client.McpClient` satisfies it), Galley's distributor
  in-process in the monolith. A feed is made by a :data:`FeedFactory` that is handed the
  core's :data:`SnapshotHandler`; it delivers a :class:`CollectionSnapshot` of each of
  :data:`MIXER_COLLECTIONS` into it, one at a time, and treats a raised exception as a
  rejection (the previous state stays).
- :class:`QuotaBackend` is where quota is counted: in memory (``memquota``, in the core)
  or in Redis (``redisquota``, an adapter), so both adapters share one quota handler.
  :class:`QuotaRequest` carries the caller's clock reading, so the window arithmetic is
  the same, and testable, in both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from shared.contracts.mcp.snapshot import CollectionSnapshot

HANDLERS = "istio/policy/v1beta1/handlers"
INSTANCES = "istio/policy/v1beta1/instances"
RULES = "istio/policy/v1beta1/rules"
AUTHORIZATION_POLICIES = "istio/security/v1beta1/authorizationpolicies"
MESH_CONFIG = "istio/mesh/v1alpha1/MeshConfig"
MIXER_COLLECTIONS = (HANDLERS, INSTANCES, RULES, AUTHORIZATION_POLICIES, MESH_CONFIG)
"""The collections Mixer follows."""

SnapshotHandler = Callable[[CollectionSnapshot], Awaitable[None]]
"""Takes a collection's new state; raises to reject it."""


class ConfigFeed(Protocol):
    """Delivers the collections' snapshots to the handler it was made with."""

    @property
    def name(self) -> str:
        """A human name for logs."""
        ...

    async def start(self) -> None:
        """Begin delivering (returns at once; the source may be down)."""
        ...

    async def stop(self) -> None:
        """Stop delivering. Idempotent."""
        ...

    def has_synced(self) -> bool:
        """Whether every collection was delivered and accepted at least once."""
        ...


FeedFactory = Callable[[SnapshotHandler], ConfigFeed]
"""Makes the feed, given where to deliver."""

QuotaAlgorithm = Literal["FIXED_WINDOW", "ROLLING_WINDOW"]


@dataclass(frozen=True, slots=True)
class QuotaRequest:
    """Allocate ``amount`` of the counter ``key`` (at most ``max_amount`` per window).

    ``window`` is in seconds (0: the counter never resets); a rolling window counts in
    buckets of ``bucket`` seconds. ``now`` is the caller's clock (seconds since the
    epoch). A non-empty ``dedup_id`` seen within ``dedup_ttl`` seconds returns the first
    answer again without allocating.
    """

    key: str
    max_amount: int
    window: float
    algorithm: QuotaAlgorithm
    bucket: float
    amount: int
    best_effort: bool
    dedup_id: str
    dedup_ttl: float
    now: float


@dataclass(frozen=True, slots=True)
class QuotaGrant:
    """What was allocated, what is left in the window, seconds until more is available."""

    granted: int
    remaining: int
    reset_after: float


class QuotaBackend(Protocol):
    """Counts quota atomically (one allocation at a time per key)."""

    async def allocate(self, request: QuotaRequest) -> QuotaGrant:
        """Allocate; raise :class:`~services.mixer.core.errors.QuotaBackendError` when
        the store cannot answer."""
        ...
