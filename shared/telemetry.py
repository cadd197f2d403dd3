"""Structured logs, OpenTelemetry traces and metrics, and W3C trace-context propagation.

Every splitmesh process calls :func:`configure_logging` and :func:`configure_telemetry` once
at start; both are safe to call again (tests, the monolith): a second
:func:`configure_telemetry` is a no-op, so no Prometheus collector is registered twice and
no provider is overridden. Metrics go to the process's default ``prometheus_client``
registry, which ``/metrics`` (``shared.http_server``) serves.

Trace context crosses every hop as a W3C ``traceparent`` (through the global OpenTelemetry
propagator): :class:`TracingServerInterceptor` extracts it from gRPC metadata and runs the
handler inside a SERVER span; :func:`client_interceptors` inject the caller's current
context into outgoing gRPC metadata (no client span: a long-lived stream would make a
useless one); :class:`TraceMiddleware` does the server side for ASGI apps, and
:func:`inject_headers` the client side for httpx.

Task safety: configuration takes a lock and may be called from any thread. Interceptors and
middleware keep no per-call state outside the call. Spans follow ``contextvars``, so a
handler's span is current in the task that runs it and in nothing else.
"""

from __future__ import annotations

import inspect
import logging
import sys
import threading
from collections.abc import Callable, Collection, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from json import dumps
from typing import Any

import grpc
from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_log = logging.getLogger(__name__)

# LogRecord attributes that are not `extra` fields (color_message: uvicorn's ANSI copy).
_RECORD_FIELDS = frozenset(
    {
        "name", "msg", "args", "levelname", "levelno", "pathname", "filename", "module",
        "exc_info", "exc_text", "stack_info", "lineno", "funcName", "created", "msecs",
        "relativeCreated", "thread", "threadName", "processName", "process", "taskName",
        "message", "asctime", "color_message",
    }
)  # fmt: skip
# Probes and reflection would drown real traces.
_UNTRACED_GRPC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
_BEHAVIOURS = {
    (False, False): "unary_unary",
    (False, True): "unary_stream",
    (True, False): "stream_unary",
    (True, True): "stream_stream",
}

_configure_lock = threading.Lock()
_configured_service: str | None = None


def _trace_fields() -> dict[str, str]:
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


class _JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, trace ids, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_trace_fields(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return dumps(entry, default=str)


class _TextFormatter(logging.Formatter):
    """The classic one-line format, with the trace id appended while a span is active."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        trace_id = _trace_fields().get("trace_id")
        return f"{line} trace_id={trace_id}" if trace_id else line


class _SplitmeshHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the root handler this module installed, so a second call replaces it."""


def configure_logging(level: str, *, json: bool) -> None:
    """Send every log record to stderr, as JSON lines when ``json``, at ``level``.

    ``level`` is a standard level name (any case); an unknown name raises ``ValueError``.
    Replaces the handler an earlier call installed and leaves other handlers alone.
    """
    levels = logging.getLevelNamesMapping()
    if level.upper() not in levels:
        raise ValueError(f"unknown log level {level!r}; expected one of {sorted(levels)}")
    handler = _SplitmeshHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if json else _TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _SplitmeshHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(levels[level.upper()])


def configure_telemetry(service: str, *, otlp_endpoint: str | None) -> None:
    """Install the process's tracer and meter providers; later calls do nothing.

    Spans are exported over OTLP/gRPC (batched) when ``otlp_endpoint`` is given
    (``http://host:4317`` for plaintext); otherwise they are created, propagated and
    dropped. Metrics are read by the Prometheus exporter on each scrape of ``/metrics``.
    """
    global _configured_service  # noqa: PLW0603 -- one configuration per process
    with _configure_lock:
        if _configured_service is not None:
            _log.debug("telemetry already configured for %s", _configured_service)
            return
        resource = Resource.create({"service.name": service})
        tracer_provider = TracerProvider(resource=resource)
        if otlp_endpoint:
            # Imported only when used: the exporter costs ~0.4 s of start-up time.
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
                OTLPSpanExporter,
            )

            exporter = OTLPSpanExporter(endpoint=otlp_endpoint)
            tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(tracer_provider)
        reader = PrometheusMetricReader()
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
        _configured_service = service


def inject_headers(headers: dict[str, str]) -> dict[str, str]:
    """Add the current trace context (``traceparent``) to ``headers``; return them."""
    propagate.inject(headers)
    return headers


def _server_span(method: str, parent: Context) -> AbstractContextManager[trace.Span]:
    service, _, name = method.lstrip("/").partition("/")
    return trace.get_tracer(__name__).start_as_current_span(
        method.lstrip("/"),
        context=parent,
        kind=trace.SpanKind.SERVER,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
    )


def _traced_handler(handler: Any, method: str, parent: Context) -> Any:
    field = _BEHAVIOURS[(handler.request_streaming, handler.response_streaming)]
    behaviour = getattr(handler, field)
    wrapped: Callable[[Any, Any], Any]
    if inspect.isasyncgenfunction(behaviour):

        async def stream(request: Any, context: Any) -> Any:
            with _server_span(method, parent):
                async for response in behaviour(request, context):
                    yield response

        wrapped = stream
    elif inspect.iscoroutinefunction(behaviour):

        async def call(request: Any, context: Any) -> Any:
            with _server_span(method, parent):
                return await behaviour(request, context)

        wrapped = call
    else:  # a synchronous handler runs on grpc's thread pool: leave it alone
        return handler
    return handler._replace(**{field: wrapped})


class TracingServerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Runs each async gRPC handler in a SERVER span continuing the caller's trace."""

    async def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: Any
    ) -> Any:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(_UNTRACED_GRPC_PREFIXES):
            return handler
        carrier = {key: value for key, value in handler_call_details.invocation_metadata or ()}
        return _traced_handler(handler, method, propagate.extract(carrier))


async def _continue_with_context(continuation: Any, details: Any, request: Any) -> Any:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if not carrier:
        return await continuation(details, request)
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    for key, value in carrier.items():
        metadata[key] = value
    return await continuation(details._replace(metadata=metadata), request)


class _UnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await _continue_with_context(continuation, details, request)


class _UnaryStream(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await _continue_with_context(continuation, details, request)


class _StreamUnary(grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await _continue_with_context(continuation, details, requests)


class _StreamStream(grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await _continue_with_context(continuation, details, requests)


def client_interceptors() -> list[Any]:
    """Interceptors for ``grpc.aio.*_channel(..., interceptors=...)`` that send the trace."""
    return [_UnaryUnary(), _UnaryStream(), _StreamUnary(), _StreamStream()]


class TraceMiddleware:
    """ASGI middleware: each HTTP request runs in a SERVER span continuing the caller's trace.

    Requests for ``exclude_paths`` (probes, scrapes) are passed through untraced. The span
    is named ``METHOD /route/{template}`` once routing has matched, and is marked as an
    error on a 5xx response or an exception.
    """

    def __init__(self, app: ASGIApp, *, exclude_paths: Collection[str] = ()) -> None:
        self._app = app
        self._exclude = frozenset(exclude_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._exclude:
            await self._app(scope, receive, send)
            return
        carrier = {
            key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]
        }
        method = scope["method"]
        with trace.get_tracer(__name__).start_as_current_span(
            f"{method} {scope['path']}",
            context=propagate.extract(carrier),
            kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope["path"]},
        ) as span:

            async def send_with_status(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(trace.StatusCode.ERROR)
                await send(message)

            try:
                await self._app(scope, receive, send_with_status)
            finally:
                _name_after_route(span, method, scope)


def _name_after_route(span: trace.Span, method: str, scope: Mapping[str, Any]) -> None:
    template = getattr(scope.get("route"), "path", None)
    if isinstance(template, str):
        span.update_name(f"{method} {template}")
        span.set_attribute("http.route", template)
