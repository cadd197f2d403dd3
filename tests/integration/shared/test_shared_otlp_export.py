"""A service configured with an OTLP endpoint ships its spans to a real OTLP/gRPC collector."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from shared.grpc_server import GrpcServer

SERVICE_PROGRAM = """
import sys
from opentelemetry import trace
from shared.telemetry import configure_telemetry

configure_telemetry("citadel", otlp_endpoint=sys.argv[1])
with trace.get_tracer("citadel").start_as_current_span("sign csr"):
    pass
"""  # spans are flushed when the process exits


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.received: list[Any] = []

    async def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 -- gRPC name
        self.received.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


async def test_spans_reach_the_collector_with_the_service_name() -> None:
    collector = Collector()
    server = GrpcServer(name="collector")
    add_servicer: Any = trace_service_pb2_grpc.add_TraceServiceServicer_to_server
    add_servicer(collector, server.server)
    await server.start()
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-W",
            "error",
            "-c",
            SERVICE_PROGRAM,
            f"http://127.0.0.1:{server.port}",
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
    finally:
        await server.stop()
    assert process.returncode == 0, stderr.decode()
    resource_spans = [rs for request in collector.received for rs in request.resource_spans]
    service_names = {
        attribute.value.string_value
        for rs in resource_spans
        for attribute in rs.resource.attributes
        if attribute.key == "service.name"
    }
    names = [span.name for rs in resource_spans for ss in rs.scope_spans for span in ss.spans]
    assert service_names == {"citadel"}
    assert names == ["sign csr"]
