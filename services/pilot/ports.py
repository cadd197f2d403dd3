"""The narrow interfaces Pilot's core consumes.

- :class:`ConfigFeed` is where mesh config comes from: it hands the core the newest
  :class:`~shared.contracts.mcp.snapshot.CollectionSnapshot` of each collection. The split
  deployment satisfies it with the shared MCP client following Galley
  (``adapters.mcp_feed``); the monolith will satisfy it with Galley's distributor
  in-process. A handler that raises rejects that snapshot (the feed NACKs it with the
  exception text) and the feed keeps delivering later ones.
- :class:`~services.pilot.core.registry.ServiceRegistry` is where services come from
  (the ServiceEntry registry of the config store now, Kubernetes later).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from services.pilot.core.registry import ServiceRegistry
from shared.contracts.mcp.snapshot import CollectionSnapshot

__all__ = ["ConfigFeed", "ServiceRegistry", "SnapshotHandler"]

SnapshotHandler = Callable[[CollectionSnapshot], Awaitable[None]]
"""Receives one collection's newest state; raising rejects it."""


class ConfigFeed(Protocol):
    """A source of collection snapshots, started with the handler that consumes them."""

    @property
    def name(self) -> str:
        """Human name for logs."""
        ...

    async def start(self, handler: SnapshotHandler) -> None:
        """Begin delivering snapshots to ``handler`` (one call at a time, in order).

        Returns at once: the source may not be reachable yet.
        """
        ...

    async def stop(self) -> None:
        """Stop delivering. Idempotent; safe before start."""
        ...
