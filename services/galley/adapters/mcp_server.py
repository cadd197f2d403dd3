"""Galley's MCP gRPC servicer: one ``EstablishResourceStream`` is one distributor subscription.

:func:`register` adds a :class:`McpServicer` to a ``grpc.aio.Server`` it is handed; it never
owns a listener. Per stream, a reader task turns each ``RequestResources`` into a call on the
:class:`~services.galley.core.distribution.Subscription` (subscribe when it carries no nonce,
NACK when it carries ``error_detail``, ACK otherwise) while the handler itself (an
``async def`` generator, as grpc.aio requires) yields each push as a ``Resources`` message.
The sink is named by the ``sink_node.id`` of its first request (its peer address if empty).

Errors: a request the distributor rejects (:class:`RequestError`: empty or unknown
collection, a collection subscribed twice) aborts that stream only, with the status in
:data:`_STATUS_OF` and the error's message. When the sink half-closes its side the
stream ends with OK; when the distributor closes the subscription (Galley is stopping) it
ends at once with UNAVAILABLE, which sinks retry.

Task safety: each stream owns its subscription and its reader task; both are released when
the stream ends for any reason (sink gone, abort, server stop).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping

import grpc

from services.galley.core.distribution import (
    Distributor,
    RequestError,
    Subscription,
    SubscriptionClosedError,
)
from shared.contracts.mcp.convert import resources_message
from shared.contracts.mcp.v1 import mcp_pb2, mcp_pb2_grpc

_log = logging.getLogger(__name__)

# How a request error ends the stream, looked up along the error's class hierarchy: the
# unknown-collection and invalid-request errors inherit INVALID_ARGUMENT from their base.
_STATUS_OF: Mapping[type[RequestError], grpc.StatusCode] = {
    RequestError: grpc.StatusCode.INVALID_ARGUMENT,
}


class McpServicer(mcp_pb2_grpc.ResourceSourceServicer):
    """Serves ``splitmesh.mcp.v1.ResourceSource`` from a :class:`Distributor`."""

    def __init__(self, distributor: Distributor) -> None:
        self._distributor = distributor

    async def EstablishResourceStream(  # noqa: N802  (the generated method name)
        self,
        request_iterator: AsyncIterator[mcp_pb2.RequestResources],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[mcp_pb2.Resources]:
        """Serve one sink until it half-closes, sends a bad request, or goes away."""
        first = await anext(request_iterator, None)
        if first is None:
            return
        subscription = self._distributor.subscribe(first.sink_node.id or context.peer())
        reader = asyncio.create_task(
            _read_requests(first, request_iterator, subscription),
            name=f"mcp-reader-{subscription.stream_id}",
        )
        try:
            while True:
                try:
                    push = await subscription.next_push()
                except SubscriptionClosedError:
                    break
                yield resources_message(
                    collection=push.collection,
                    version=push.version,
                    nonce=push.nonce,
                    incremental=push.incremental,
                    resources=push.resources,
                    removed=push.removed,
                )
            # A reader that ended closed the subscription itself; one still reading means
            # the distributor closed it: Galley is stopping.
            stopping = not reader.done()
            error = None if stopping else reader.result()
        finally:
            subscription.close()
            await _cancel(reader)
        if stopping:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "Galley is stopping")
        if error is not None:
            _log.warning("closing MCP stream of sink %s: %s", subscription.sink_id, error)
            await context.abort(_status_of(error), str(error))


def register(server: grpc.aio.Server, distributor: Distributor) -> McpServicer:
    """Add an :class:`McpServicer` for ``distributor`` to ``server`` (not yet started)."""
    servicer = McpServicer(distributor)
    mcp_pb2_grpc.add_ResourceSourceServicer_to_server(servicer, server)
    return servicer


async def _read_requests(
    first: mcp_pb2.RequestResources,
    rest: AsyncIterator[mcp_pb2.RequestResources],
    subscription: Subscription,
) -> RequestError | None:
    """Apply every request to ``subscription``; the request error that ended it, if any.

    Closes the subscription when it returns, which ends the push loop.
    """
    try:
        _apply(first, subscription)
        async for request in rest:
            _apply(request, subscription)
    except RequestError as exc:
        return exc
    finally:
        subscription.close()
    return None


def _status_of(error: RequestError) -> grpc.StatusCode:
    return next(_STATUS_OF[cls] for cls in type(error).__mro__ if cls in _STATUS_OF)


async def _cancel(reader: asyncio.Task[RequestError | None]) -> None:
    """Cancel ``reader`` and wait for it (without absorbing a cancellation of the caller)."""
    reader.cancel()
    await asyncio.wait({reader})
    if not reader.cancelled() and reader.exception() is not None:
        _log.debug("MCP request reader failed: %r", reader.exception())


def _apply(request: mcp_pb2.RequestResources, subscription: Subscription) -> None:
    if not request.response_nonce:
        subscription.subscribe(
            request.collection,
            dict(request.initial_resource_versions),
            request.incremental,
        )
    elif request.HasField("error_detail"):
        detail = request.error_detail
        message = detail.message or f"status code {detail.code}, no message"
        subscription.nack(request.collection, request.response_nonce, message)
    else:
        subscription.ack(request.collection, request.response_nonce)
