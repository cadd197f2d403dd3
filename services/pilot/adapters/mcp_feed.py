"""The split deployment's config feed: Galley's collections over MCP.

:class:`McpConfigFeed` implements :class:`services.pilot.ports.ConfigFeed` with the shared
:class:`~shared.contracts.mcp.client.McpClient`: ``start(handler)`` creates the client for
``collections`` and starts it (it returns at once and reconnects with backoff while Galley
is unreachable, so Pilot keeps serving the config it last accepted). A handler that raises
NACKs that push with the exception text.

Task safety: use from one event loop. ``stop`` is idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.pilot.ports import SnapshotHandler
from shared.contracts.mcp.client import McpClient


class McpConfigFeed:
    """Follows ``collections`` of the Galley at ``target`` (``host:port``)."""

    def __init__(self, *, target: str, sink_id: str, collections: Sequence[str]) -> None:
        self._target = target
        self._sink_id = sink_id
        self._collections = tuple(collections)
        self._client: McpClient | None = None

    @property
    def name(self) -> str:
        """``mcp-feed <target>``, for logs."""
        return f"mcp-feed {self._target}"

    @property
    def last_error(self) -> str | None:
        """Why the last MCP stream ended (None while it never failed)."""
        return None if self._client is None else self._client.last_error

    async def start(self, handler: SnapshotHandler) -> None:
        """Start following Galley; snapshots go to ``handler``. No-op when started."""
        if self._client is None:
            self._client = McpClient(
                target=self._target,
                sink_id=self._sink_id,
                collections=self._collections,
                handler=handler,
            )
        await self._client.start()

    async def stop(self) -> None:
        """Stop following Galley. Idempotent."""
        if self._client is not None:
            await self._client.stop()
