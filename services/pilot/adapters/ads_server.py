"""Pilot's ADS gRPC servicer: envoy.service.discovery.v3.AggregatedDiscoveryService.

:func:`register` adds an :class:`AdsServicer` to a ``grpc.aio.Server`` it is handed; it
never owns a listener. Each ``StreamAggregatedResources`` (state of the world) or
``DeltaAggregatedResources`` (incremental) stream is one connection of the
:class:`~services.pilot.core.ads.server.DiscoveryServer`, opened with the node of the
stream's first request. A reader task hands every request to the connection while the
handler itself (an ``async def`` generator, as grpc.aio requires) yields each response the
connection builds.

Errors: a request the core rejects (:class:`StreamRequestError`: an unknown type URL, a
node that describes no proxy) ends that stream only, with the status in :data:`_STATUS_OF`
and the error's message. When the client half-closes, or the discovery server closes the
connection (Pilot stopping), the stream ends with OK.

Task safety: each stream owns its connection and reader task; both are released when the
stream ends for any reason (client gone, abort, server stop).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TypeVar

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from services.pilot.core.ads.connection import Connection
from services.pilot.core.ads.delta import DeltaConnection
from services.pilot.core.ads.errors import ConnectionClosedError, StreamRequestError
from services.pilot.core.ads.selection import EncodedResponse
from services.pilot.core.ads.server import DiscoveryServer
from services.pilot.core.ads.sotw import SotwConnection

_log = logging.getLogger(__name__)

# How a request error ends the stream, looked up along the error's class hierarchy.
_STATUS_OF: Mapping[type[StreamRequestError], grpc.StatusCode] = {
    StreamRequestError: grpc.StatusCode.INVALID_ARGUMENT,
}

_SLOT_HOLD_S = 1.0  # a write slower than this (a client not reading) gives its slot back
_SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"
_Request = TypeVar("_Request", discovery_pb2.DiscoveryRequest, discovery_pb2.DeltaDiscoveryRequest)


class AdsServicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    """Serves SotW and delta ADS from a :class:`DiscoveryServer`.

    At most ``send_concurrency`` responses are being written at once over all streams (see
    :class:`SendSlots`), so a push to many proxies does not buffer every proxy's response at
    the same time.
    """

    def __init__(self, discovery: DiscoveryServer, *, send_concurrency: int) -> None:
        self._discovery = discovery
        self._sending = SendSlots(send_concurrency, hold_s=_SLOT_HOLD_S)

    async def StreamAggregatedResources(  # noqa: N802  (the generated method name)
        self,
        request_iterator: AsyncIterator[discovery_pb2.DiscoveryRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[EncodedResponse]:
        """Serve one state-of-the-world stream until the client leaves or errs."""
        async for response in _serve(self._discovery, request_iterator, context, SotwConnection):
            async with self._sending.slot():
                yield response

    async def DeltaAggregatedResources(  # noqa: N802  (the generated method name)
        self,
        request_iterator: AsyncIterator[discovery_pb2.DeltaDiscoveryRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[EncodedResponse]:
        """Serve one delta stream until the client leaves or errs."""
        async for response in _serve(self._discovery, request_iterator, context, DeltaConnection):
            async with self._sending.slot():
                yield response


class SendSlots:
    """At most ``size`` responses being written at once, each for at most ``hold_s``.

    A stream holds a slot from handing gRPC its response until gRPC asks for the next one
    (the write is done). A slot held longer than ``hold_s`` is given back anyway, so a
    client that stopped reading cannot stall the writes to everyone else.
    """

    def __init__(self, size: int, *, hold_s: float) -> None:
        self._free = asyncio.Semaphore(size)
        self._hold_s = hold_s

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the body (or ``hold_s``, whichever ends first)."""
        await self._free.acquire()
        held = True

        def give_back() -> None:
            nonlocal held
            if held:
                held = False
                self._free.release()

        timer = asyncio.get_running_loop().call_later(self._hold_s, give_back)
        try:
            yield
        finally:
            timer.cancel()
            give_back()


def register(
    server: grpc.aio.Server, discovery: DiscoveryServer, *, send_concurrency: int
) -> AdsServicer:
    """Add an :class:`AdsServicer` for ``discovery`` to ``server`` (not yet started).

    As the generated ``add_AggregatedDiscoveryServiceServicer_to_server``, except that
    the core's responses are already encoded: they go to the wire as they are.
    """
    servicer = AdsServicer(discovery, send_concurrency=send_concurrency)
    handlers = {
        "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(
            servicer.StreamAggregatedResources,
            request_deserializer=discovery_pb2.DiscoveryRequest.FromString,
            response_serializer=EncodedResponse.payload,
        ),
        "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(
            servicer.DeltaAggregatedResources,
            request_deserializer=discovery_pb2.DeltaDiscoveryRequest.FromString,
            response_serializer=EncodedResponse.payload,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_SERVICE, handlers),))
    return servicer


async def _serve(
    discovery: DiscoveryServer,
    requests: AsyncIterator[_Request],
    context: grpc.aio.ServicerContext,
    kind: type[Connection[_Request]],
) -> AsyncIterator[EncodedResponse]:
    """One stream: open its connection, read requests, yield responses, map errors."""
    first = await anext(requests, None)
    if first is None:
        return
    try:
        connection = discovery.connect(first.node, peer=context.peer(), kind=kind)
    except StreamRequestError as exc:
        _log.warning("refusing ADS stream from %s: %s", context.peer(), exc)
        await context.abort(_status_of(exc), str(exc))
    reader = asyncio.create_task(
        _read_requests(connection, first, requests), name=f"ads-reader-{connection.id}"
    )
    try:
        while True:
            try:
                response = await connection.next_response()
            except ConnectionClosedError:
                break
            yield response
        # The reader closed the connection (client done or bad request) and has finished,
        # or the server closed it while the client still sends: then there is no error.
        error = reader.result() if reader.done() else None
    finally:
        discovery.disconnect(connection)
        await _cancel(reader)
    if error is not None:
        _log.warning("closing ADS stream of %s: %s", connection.proxy.id, error)
        await context.abort(_status_of(error), str(error))


async def _read_requests(
    connection: Connection[_Request],
    first: _Request,
    rest: AsyncIterator[_Request],
) -> StreamRequestError | None:
    """Hand every request to ``connection``; the request error that ended it, if any.

    Closes the connection when it returns, which ends the response loop.
    """
    try:
        connection.handle(first)
        async for request in rest:
            connection.handle(request)
    except StreamRequestError as exc:
        return exc
    except Exception as exc:  # the stream broke under us: the handler is ending anyway
        _log.debug("ADS stream of %s broke: %r", connection.proxy.id, exc)
    finally:
        connection.close()
    return None


def _status_of(error: StreamRequestError) -> grpc.StatusCode:
    return next(_STATUS_OF[cls] for cls in type(error).__mro__ if cls in _STATUS_OF)


async def _cancel(reader: asyncio.Task[StreamRequestError | None]) -> None:
    """Cancel ``reader`` and wait for it (without absorbing a cancellation of the caller)."""
    reader.cancel()
    await asyncio.wait({reader})
