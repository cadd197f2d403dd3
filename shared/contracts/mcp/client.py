"""The MCP sink client Pilot and Mixer use to follow Galley's collections.

:class:`McpClient` is a Component (``name``, ``async start()``, idempotent ``async stop()``).
``start()`` only launches a background task and returns: Galley may be down. The task opens
``EstablishResourceStream`` on a fresh insecure channel, subscribes to every collection
(``incremental=true``, with ``initial_resource_versions`` of what it holds, so a reconnect
resumes), and answers each ``Resources`` message:

- it builds the collection's new state (an incremental push is applied onto what it holds)
  and awaits ``handler(snapshot)``;
- if the handler returns, the state is kept and the push is ACKed; if it raises, the push is
  NACKed with the exception text as ``error_detail.message`` and the previous state is kept.

The handler is awaited one push at a time, in arrival order: a slow handler delays this
client's other collections (never other sinks; Galley has one push outstanding per
collection, so nothing piles up). On any stream failure the client reconnects after an
exponential backoff (``initial_backoff`` doubling up to ``max_backoff``, each delay drawn
uniformly from its upper half); the backoff resets once a stream delivers a message.

Ownership and task safety: use from one event loop. ``snapshots()`` returns a fresh dict of
immutable snapshots. ``stop()`` cancels the task, including a handler call in progress.
Errors: constructor arguments are checked (:class:`ValueError`); stream errors are logged,
kept in :attr:`McpClient.last_error` and retried, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence

import grpc
from google.rpc import code_pb2, status_pb2

from shared.contracts.mcp.convert import apply_resources
from shared.contracts.mcp.snapshot import CollectionSnapshot
from shared.contracts.mcp.v1 import mcp_pb2, mcp_pb2_grpc
from shared.telemetry import client_interceptors

_log = logging.getLogger(__name__)

SnapshotHandler = Callable[[CollectionSnapshot], Awaitable[None]]
SnapshotPredicate = Callable[[CollectionSnapshot], bool]

# What the reader hands the stream loop: a push, the error that ended the stream, or None
# when the source ended it with OK.
_Inbound = mcp_pb2.Resources | Exception | None


class McpClient:
    """Follows ``collections`` of the MCP source at ``target`` ("host:port")."""

    def __init__(
        self,
        *,
        target: str,
        sink_id: str,
        collections: Sequence[str],
        handler: SnapshotHandler,
        initial_backoff: float = 0.1,
        max_backoff: float = 10.0,
    ) -> None:
        if not collections or any(not c for c in collections):
            raise ValueError("an MCP client needs at least one non-empty collection name")
        if len(set(collections)) != len(collections):
            raise ValueError(f"duplicate collections in {list(collections)}")
        if not 0 < initial_backoff <= max_backoff:
            raise ValueError(
                f"need 0 < initial_backoff <= max_backoff, got {initial_backoff}, {max_backoff}"
            )
        self._target = target
        self._sink = mcp_pb2.SinkNode(id=sink_id)
        self._collections = tuple(collections)
        self._handler = handler
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._backoff = initial_backoff
        self._random = random.Random()
        self._state: dict[str, CollectionSnapshot] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_error: str | None = None

    @property
    def name(self) -> str:
        """``mcp-client <sink id> -> <target>``, for logs."""
        return f"mcp-client {self._sink.id} -> {self._target}"

    @property
    def last_error(self) -> str | None:
        """Why the last stream ended (``CODE: details``); None until one fails."""
        return self._last_error

    async def start(self) -> None:
        """Launch the background stream task and return at once (no-op if running)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Cancel the stream task and wait for it to end. Idempotent; safe before start."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.wait({task})

    def snapshots(self) -> Mapping[str, CollectionSnapshot]:
        """The accepted (ACKed) state of each collection received so far."""
        return dict(self._state)

    def has_synced(self) -> bool:
        """Whether every collection has been received and accepted at least once."""
        return all(collection in self._state for collection in self._collections)

    async def wait_for(
        self,
        collection: str,
        predicate: SnapshotPredicate | None = None,
        timeout: float = 30.0,  # noqa: ASYNC109  (so the TimeoutError can name what is held)
    ) -> CollectionSnapshot:
        """Wait until ``collection``'s accepted state satisfies ``predicate`` (default: exists).

        Returns that snapshot; raises :class:`TimeoutError` after ``timeout`` seconds.
        """
        try:
            async with asyncio.timeout(timeout):
                while True:
                    changed = self._changed
                    snapshot = self._state.get(collection)
                    if snapshot is not None and (predicate is None or predicate(snapshot)):
                        return snapshot
                    await changed.wait()
        except TimeoutError:
            held = self._state.get(collection)
            version = "nothing" if held is None else f"version {held.version}"
            raise TimeoutError(
                f"{collection} did not reach the expected state in {timeout} s "
                f"(holds {version}; last stream error: {self._last_error})"
            ) from None

    async def _run(self) -> None:
        while True:
            try:
                await self._stream_once()
                self._last_error = "the source closed the stream"
            except grpc.aio.AioRpcError as exc:
                self._last_error = f"{exc.code().name}: {exc.details()}"
            except Exception as exc:
                _log.exception("%s: stream failed unexpectedly", self.name)
                self._last_error = f"{type(exc).__name__}: {exc}"
            delay = self._random.uniform(self._backoff / 2, self._backoff)
            self._backoff = min(self._backoff * 2, self._max_backoff)
            _log.warning("%s: %s; reconnecting in %.2f s", self.name, self._last_error, delay)
            await asyncio.sleep(delay)

    async def _stream_once(self) -> None:
        """One stream: subscribe, then answer pushes until it ends (raising why it ended).

        A reader task reads ahead into a small inbox (at most one push per collection can be
        outstanding, plus the end marker) so that the stream's final status is received
        while the handler runs. Writes that fail because the source already ended the
        stream are dropped: the reader reports the status the source gave.
        """
        async with grpc.aio.insecure_channel(
            self._target, interceptors=client_interceptors()
        ) as channel:
            call = mcp_pb2_grpc.ResourceSourceStub(channel).EstablishResourceStream()
            inbox: asyncio.Queue[_Inbound] = asyncio.Queue(maxsize=len(self._collections) + 1)
            reader = asyncio.create_task(_read_into(call, inbox), name=f"{self.name} reader")
            try:
                for collection in self._collections:
                    await _send(call, self._subscription(collection))
                while True:
                    item = await inbox.get()
                    if item is None:
                        return
                    if isinstance(item, Exception):
                        raise item
                    self._backoff = self._initial_backoff
                    await _send(call, await self._answer(item))
            finally:
                reader.cancel()
                await asyncio.wait({reader})
                # Close our half so the interceptor's request iterator finishes cleanly.
                with contextlib.suppress(grpc.RpcError, grpc.aio.UsageError, RuntimeError):
                    await call.done_writing()

    def _subscription(self, collection: str) -> mcp_pb2.RequestResources:
        held = self._state.get(collection)
        return mcp_pb2.RequestResources(
            sink_node=self._sink,
            collection=collection,
            initial_resource_versions={} if held is None else held.resource_versions(),
            incremental=True,
        )

    async def _answer(self, message: mcp_pb2.Resources) -> mcp_pb2.RequestResources:
        """Apply ``message`` through the handler; the ACK or NACK to send back."""
        collection = message.collection
        reply = mcp_pb2.RequestResources(
            sink_node=self._sink, collection=collection, response_nonce=message.nonce
        )
        try:
            if collection not in self._collections:
                raise ValueError(f"collection {collection!r} was not subscribed")
            snapshot = apply_resources(self._state.get(collection), message)
            await self._handler(snapshot)
        except Exception as exc:
            error = str(exc) or type(exc).__name__
            _log.warning(
                "%s: rejecting %s version %s: %s",
                self.name,
                collection,
                message.system_version_info,
                error,
            )
            reply.error_detail.CopyFrom(
                status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=error)
            )
            return reply
        self._state[collection] = snapshot
        self._changed.set()
        self._changed = asyncio.Event()
        return reply


async def _read_into(call: grpc.aio.StreamStreamCall, inbox: asyncio.Queue[_Inbound]) -> None:
    """Put every message of ``call`` into ``inbox``, then how the stream ended."""
    try:
        while (message := await call.read()) is not grpc.aio.EOF:
            await inbox.put(message)
    except Exception as exc:
        await inbox.put(exc)
    else:
        await inbox.put(None)


async def _send(call: grpc.aio.StreamStreamCall, request: mcp_pb2.RequestResources) -> None:
    """Write ``request``; if the stream already ended, drop it (the reader reports why)."""
    try:
        await call.write(request)
    except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as exc:
        _log.debug("dropping %s request: the stream ended (%s)", request.collection, exc)
