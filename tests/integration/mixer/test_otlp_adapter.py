"""The opentelemetry adapter ships metric and tracespan instances to a real OTLP collector."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from services.mixer.adapters.otlp import OpenTelemetryBuilder
from services.mixer.core.handlers.base import Instance
from shared.config.policy_adapters import OpentelemetryParams
from shared.grpc_server import GrpcServer


class Collector(
    trace_service_pb2_grpc.TraceServiceServicer, metrics_service_pb2_grpc.MetricsServiceServicer
):
    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.metrics: list[Any] = []

    async def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC name
        if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
            self.spans.extend(
                (rs, span)
                for rs in request.resource_spans
                for ss in rs.scope_spans
                for span in ss.spans
            )
            return trace_service_pb2.ExportTraceServiceResponse()
        self.metrics.extend(
            metric
            for rm in request.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
        )
        return metrics_service_pb2.ExportMetricsServiceResponse()


async def test_metrics_and_spans_reach_the_collector() -> None:
    collector = Collector()
    server = GrpcServer(name="collector")
    add_traces: Any = trace_service_pb2_grpc.add_TraceServiceServicer_to_server
    add_metrics: Any = metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server
    add_traces(collector, server.server)
    add_metrics(collector, server.server)
    await server.start()
    try:
        params = OpentelemetryParams.model_validate(
            {"endpoint": f"http://127.0.0.1:{server.port}", "insecure": True, "serviceName": "mesh"}
        )
        handler = OpenTelemetryBuilder(export_interval=60).build(
            "otel.handler.istio-system", params
        )
        start = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
        await handler.handle_report(
            [
                Instance(
                    "requestduration.instance.istio-system",
                    "metric",
                    {"value": timedelta(milliseconds=12), "dimensions": {"response_code": 200}},
                ),
                Instance(
                    "span.instance.istio-system",
                    "tracespan",
                    {
                        "trace_id": "0af7651916cd43dd8448eb211c80319c",
                        "span_id": "b7ad6b7169203331",
                        "parent_span_id": "00f067aa0ba902b7",
                        "span_name": "catalog.shop",
                        "start_time": start,
                        "end_time": start + timedelta(milliseconds=12),
                        "span_tags": {"http.path": "/items"},
                        "client_span": False,
                    },
                ),
            ]
        )
        await handler.close()  # flushes both
    finally:
        await server.stop()
    [(resource_spans, span)] = collector.spans
    assert span.name == "catalog.shop"
    assert span.trace_id.hex() == "0af7651916cd43dd8448eb211c80319c"
    assert span.parent_span_id.hex() == "00f067aa0ba902b7"
    assert span.end_time_unix_nano - span.start_time_unix_nano == 12_000_000
    service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert service["service.name"] == "mesh"
    [metric] = [m for m in collector.metrics if m.name == "requestduration.instance.istio-system"]
    [point] = metric.histogram.data_points
    assert (point.count, point.sum) == (1, 12.0)
    assert {a.key: a.value.int_value for a in point.attributes} == {"response_code": 200}
