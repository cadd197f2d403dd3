"""A :class:`~services.mixer.ports.ConfigFeed` over fixed config: Mixer without Galley.

:class:`StaticFeed` delivers one snapshot per Mixer collection, made from already
parsed :class:`~shared.config.Resource` objects (what Galley would publish for them),
when it starts, or later when ``hold`` is set and :meth:`StaticFeed.release` is called.
The benchmarks and in-process tests run Mixer on it; :func:`static_feed_factory` makes
the :data:`~services.mixer.ports.FeedFactory` ``build_mixer`` takes.

Task safety: event loop only. Errors: whatever the snapshot handler raises propagates
from :meth:`StaticFeed.release` (``start`` included).
"""

from __future__ import annotations

from collections.abc import Sequence

from services.mixer.ports import MIXER_COLLECTIONS, FeedFactory, SnapshotHandler
from shared.config import Resource
from shared.contracts.mcp.snapshot import CollectionSnapshot, McpResource


class StaticFeed:
    """Delivers ``resources`` once (see the module docstring)."""

    name = "static-config"

    def __init__(
        self,
        handler: SnapshotHandler,
        resources: Sequence[Resource],
        *,
        version: str = "static",
        hold: bool = False,
    ) -> None:
        self._handler = handler
        self._resources = tuple(resources)
        self._version = version
        self._hold = hold
        self._delivered: set[str] = set()

    async def start(self) -> None:
        """Deliver now, unless holding."""
        if not self._hold:
            await self.release()

    async def release(self) -> None:
        """Deliver every collection."""
        for collection in MIXER_COLLECTIONS:
            resources = {
                r.metadata.full_name: McpResource(
                    name=r.metadata.full_name,
                    version=r.content_version(),
                    body=r.body(),
                    labels=r.metadata.labels,
                    annotations=r.metadata.annotations,
                )
                for r in self._resources
                if r.collection == collection
            }
            await self._handler(CollectionSnapshot(collection, self._version, resources))
            self._delivered.add(collection)

    async def stop(self) -> None:
        """Nothing to stop."""

    def has_synced(self) -> bool:
        """Whether every collection was delivered."""
        return len(self._delivered) == len(MIXER_COLLECTIONS)


def static_feed_factory(resources: Sequence[Resource], *, hold: bool = False) -> FeedFactory:
    """A feed factory for ``build_mixer`` that serves ``resources``."""

    def make(handler: SnapshotHandler) -> StaticFeed:
        return StaticFeed(handler, resources, hold=hold)

    return make
