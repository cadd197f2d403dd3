"""Envoy's ALS v3 ``AccessLogService.StreamAccessLogs``: Mixer's Report.

Each stream starts with an ``identifier`` naming the sidecar (Envoy sends it on the
first message only); the servicer reads the reporter from the node metadata once, then
turns the HTTP entries of each message into bags (:mod:`.access_log_bag`) and submits
them to the :class:`~services.mixer.core.reporter.Reporter`, which batches and
dispatches. Submits wait while the report queue is full, so gRPC flow control slows the
sender down.
TCP entries are not reported (splitmesh has no TCP metrics).

Bad input: a stream whose first message has no identifier, or whose messages cannot be
decoded, is closed with INVALID_ARGUMENT and counted
(``mixer_access_log_streams_rejected_total``); entries it delivered before stay
reported, and other streams are not affected. Task safety: one task per stream.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from services.mixer.adapters.access_log_bag import Reporter, access_log_bag
from services.mixer.core.reporter import Reporter as ReportBatcher
from services.mixer.core.self_metrics import MixerMetrics

_log = logging.getLogger(__name__)


class MalformedStreamError(ValueError):
    """An access-log stream that breaks the protocol."""


class AccessLogServicer(als_pb2_grpc.AccessLogServiceServicer):  # type: ignore[misc]
    """Receives access-log streams (see the module docstring)."""

    def __init__(self, reporter: ReportBatcher, metrics: MixerMetrics) -> None:
        self._reporter = reporter
        self._metrics = metrics

    async def StreamAccessLogs(self, request_iterator: Any, context: Any) -> Any:  # noqa: N802
        """Report every HTTP entry of the stream."""
        source: Reporter | None = None
        try:
            async for message in request_iterator:
                if source is None:
                    source = _reporter(message)
                entries = message.http_logs.log_entry
                await self._reporter.submit([access_log_bag(entry, source) for entry in entries])
        except MalformedStreamError as exc:
            await self._reject(context, "malformed", str(exc))
        except DecodeError as exc:
            await self._reject(context, "undecodable", f"cannot decode a message: {exc}")
        return als_pb2.StreamAccessLogsResponse()

    async def _reject(self, context: Any, reason: str, message: str) -> None:
        self._metrics.streams_rejected.add(1, {"reason": reason})
        _log.warning("closing an access-log stream: %s", message)
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)


def _reporter(message: Any) -> Reporter:
    if not message.HasField("identifier"):
        raise MalformedStreamError("the first message of the stream has no identifier")
    node = message.identifier.node
    metadata = json_format.MessageToDict(node.metadata) if node.HasField("metadata") else {}
    return Reporter.from_metadata(metadata, node.cluster)


def register(server: Any, reporter: ReportBatcher, metrics: MixerMetrics) -> None:
    """Add the ALS servicer to ``server`` (a ``grpc.aio.Server``)."""
    als_pb2_grpc.add_AccessLogServiceServicer_to_server(
        AccessLogServicer(reporter, metrics), server
    )
