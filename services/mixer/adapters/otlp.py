"""``opentelemetry``: ``metric`` and ``tracespan`` instances exported over OTLP/gRPC.

A handler with an ``endpoint`` owns its own tracer and meter providers (not the
process's, which carry Mixer's own telemetry) with ``serviceName`` as the resource's
``service.name`` (``istio-mesh`` by default). Each ``metric`` instance is recorded
into a histogram named after the instance (``requestcount.instance.istio-system``:
count, sum and buckets, whatever the metric's kind) with the dimensions as attributes
(durations in milliseconds); each ``tracespan`` instance becomes a span with its name,
start and end times, trace, span and parent ids (hex) and ``spanTags`` as attributes.
Spans are exported in batches, metrics every ``export_interval`` seconds; ``close``
flushes both. Without an endpoint the handler does nothing.

Task safety: event loop only (the SDK's processors are thread-safe; exports run on
their threads). ``close`` blocks on the flush, so it runs in a worker thread.
Errors: malformed ids or times skip that instance (:class:`HandlerError`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from services.mixer.core.errors import HandlerError
from services.mixer.core.handlers.base import Instance, StatelessHandler
from shared.config.policy_adapters import OpentelemetryParams

_DEFAULT_SERVICE = "istio-mesh"


class OpenTelemetryHandler:
    """A configured opentelemetry handler with an endpoint."""

    def __init__(self, params: OpentelemetryParams, *, export_interval: float) -> None:
        resource = Resource.create({"service.name": params.service_name or _DEFAULT_SERVICE})
        timeout = params.export_timeout.total_seconds() if params.export_timeout else None
        headers = dict(params.headers or {})
        span_exporter = OTLPSpanExporter(
            endpoint=params.endpoint, insecure=params.insecure, headers=headers, timeout=timeout
        )
        self._tracer_provider = TracerProvider(resource=resource)
        self._tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
        self._tracer = self._tracer_provider.get_tracer("splitmesh.mixer.opentelemetry")
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(
                endpoint=params.endpoint, insecure=params.insecure, headers=headers, timeout=timeout
            ),
            export_interval_millis=export_interval * 1000,
        )
        self._meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        self._meter = self._meter_provider.get_meter("splitmesh.mixer.opentelemetry")
        self._histograms: dict[str, Any] = {}
        self._closed = False

    async def handle_report(self, instances: Sequence[Instance]) -> None:
        """Record metrics and emit spans."""
        bad: list[str] = []
        for instance in instances:
            try:
                if instance.template == "metric":
                    self._metric(instance)
                elif instance.template == "tracespan":
                    self._span(instance.fields)
            except (TypeError, ValueError) as exc:
                bad.append(f"{instance.name}: {exc}")
        if bad:
            raise HandlerError("; ".join(bad))

    async def close(self) -> None:
        """Flush and shut the providers down. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._shutdown)

    def _shutdown(self) -> None:
        self._tracer_provider.shutdown()
        self._meter_provider.shutdown()

    def _metric(self, instance: Instance) -> None:
        histogram = self._histograms.get(instance.name)
        if histogram is None:
            histogram = self._histograms[instance.name] = self._meter.create_histogram(
                instance.name
            )
        value = instance.fields.get("value")
        if isinstance(value, timedelta):
            value = value.total_seconds() * 1000
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"value {value!r} is not a number")
        dimensions = instance.fields.get("dimensions") or {}
        histogram.record(value, {str(k): _attribute(v) for k, v in dimensions.items()})

    def _span(self, fields: Mapping[str, Any]) -> None:
        trace_id = int(str(fields.get("trace_id") or "0"), 16)
        parent_id = int(str(fields.get("parent_span_id") or "0"), 16)
        context = None
        if trace_id and parent_id:
            parent = trace.SpanContext(
                trace_id, parent_id, is_remote=True, trace_flags=trace.TraceFlags(1)
            )
            context = trace.set_span_in_context(trace.NonRecordingSpan(parent))
        tags = fields.get("span_tags") or {}
        attributes = {str(k): _attribute(v) for k, v in tags.items()}
        if "http_status_code" in fields:
            attributes["http.response.status_code"] = _attribute(fields["http_status_code"])
        kind = trace.SpanKind.CLIENT if fields.get("client_span") else trace.SpanKind.SERVER
        span = self._tracer.start_span(
            str(fields.get("span_name") or "mixer.span"),
            context=context,
            kind=kind,
            attributes=attributes,
            start_time=_nanos(fields.get("start_time")),
        )
        span.end(end_time=_nanos(fields.get("end_time")))


def _nanos(value: object) -> int | None:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1e9)
    return None


def _attribute(value: object) -> str | int | float | bool:
    if isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, timedelta):
        return value.total_seconds() * 1000
    return str(value)


class _Disabled(StatelessHandler):
    """An opentelemetry handler without an endpoint: reports go nowhere."""

    async def handle_report(self, instances: Sequence[Instance]) -> None:
        """Drop the instances."""


class OpenTelemetryBuilder:
    """Builds opentelemetry handlers."""

    templates = frozenset({"metric", "tracespan"})

    def __init__(self, *, export_interval: float = 5.0) -> None:
        self._export_interval = export_interval

    def build(self, name: str, params: Any) -> OpenTelemetryHandler | _Disabled:
        """A handler exporting to ``params.endpoint`` (or a disabled one without)."""
        if not params.endpoint:
            return _Disabled()
        return OpenTelemetryHandler(params, export_interval=self._export_interval)
