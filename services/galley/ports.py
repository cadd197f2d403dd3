"""The narrow interfaces Galley's core consumes and offers to its adapters.

- :class:`ConfigSource` is where config comes from: a watched directory today
  (``adapters.directory_source``), Kubernetes CRDs later. The core hands it a
  :class:`ConfigSink` and the source reports whole-source replacements into it.
- :class:`SnapshotPublisher` is where validated snapshots go: the MCP distributor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from shared.config import ConfigIssue, Resource
from shared.contracts.mcp.snapshot import CollectionSnapshot


class ConfigSink(Protocol):
    """Receives what a source read. Called from the event loop thread only."""

    def replace_source(
        self, source: str, resources: tuple[Resource, ...], issues: tuple[ConfigIssue, ...]
    ) -> None:
        """``source`` (a file) now holds exactly ``resources``; ``issues`` were found.

        When ``issues`` holds a file-level error (unreadable, bad YAML), ``resources`` is
        empty and the objects the source held before keep being served.
        """
        ...

    def remove_source(self, source: str) -> None:
        """``source`` is gone: its objects are withdrawn."""
        ...

    def mark_synced(self) -> None:
        """The source finished its initial full read; publishing may begin."""
        ...


class ConfigSource(Protocol):
    """A place config comes from. Owns its watcher task; reports into the sink."""

    @property
    def name(self) -> str:
        """Human name for logs (``directory:/etc/istio``)."""
        ...

    async def start(self, sink: ConfigSink) -> None:
        """Read everything once (reporting into ``sink``, then ``mark_synced``), then watch."""
        ...

    async def stop(self) -> None:
        """Stop watching. Idempotent."""
        ...


class SnapshotPublisher(Protocol):
    """Takes the newest snapshots and distributes them to subscribers."""

    def publish(self, snapshots: Mapping[str, CollectionSnapshot]) -> None:
        """Make these the current snapshots of their collections (others unchanged)."""
        ...
