"""W3C trace context crosses real gRPC and HTTP hops and becomes server spans."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from fastapi import APIRouter
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.grpc_server import GrpcServer
from shared.http_server import HttpServer, build_http_app
from shared.telemetry import client_interceptors, inject_headers

SERVICE = "splitmesh.test.Echo"


class Echo:
    """Bytes in, bytes out, in all four RPC shapes; records the trace each handler runs in."""

    def __init__(self) -> None:
        self.seen: list[trace.SpanContext] = []

    def _record(self) -> None:
        self.seen.append(trace.get_current_span().get_span_context())

    async def unary_unary(self, request: bytes, context: Any) -> bytes:
        self._record()
        return request

    async def unary_stream(self, request: bytes, context: Any) -> AsyncIterator[bytes]:
        self._record()
        yield request
        yield request

    async def stream_unary(self, requests: AsyncIterator[bytes], context: Any) -> bytes:
        self._record()
        return b"".join([r async for r in requests])

    async def stream_stream(self, requests: AsyncIterator[bytes], context: Any) -> Any:
        self._record()
        async for request in requests:
            yield request

    def handlers(self) -> dict[str, Any]:
        return {
            "UnaryUnary": grpc.unary_unary_rpc_method_handler(self.unary_unary),
            "UnaryStream": grpc.unary_stream_rpc_method_handler(self.unary_stream),
            "StreamUnary": grpc.stream_unary_rpc_method_handler(self.stream_unary),
            "StreamStream": grpc.stream_stream_rpc_method_handler(self.stream_stream),
        }


async def call(channel: Any, method: str) -> list[bytes]:
    path = f"/{SERVICE}/{method}"
    if method == "UnaryUnary":
        return [await channel.unary_unary(path)(b"x", timeout=5)]
    if method == "UnaryStream":
        return [r async for r in channel.unary_stream(path)(b"x", timeout=5)]
    if method == "StreamUnary":
        return [await channel.stream_unary(path)(iter([b"x", b"y"]), timeout=5)]
    return [r async for r in channel.stream_stream(path)(iter([b"x", b"y"]), timeout=5)]


@pytest.fixture
async def echo_channel() -> AsyncIterator[tuple[Echo, Any]]:
    echo = Echo()
    server = GrpcServer(name="echo", grace=0.5)
    server.server.add_registered_method_handlers(SERVICE, echo.handlers())
    await server.start()
    channel = grpc.aio.insecure_channel(
        f"127.0.0.1:{server.port}", interceptors=client_interceptors()
    )
    yield echo, channel
    await channel.close()
    await server.stop()


def server_spans(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.kind == trace.SpanKind.SERVER]


@pytest.mark.parametrize("method", ["UnaryUnary", "UnaryStream", "StreamUnary", "StreamStream"])
async def test_a_grpc_call_continues_the_callers_trace(
    echo_channel: tuple[Echo, Any], spans: InMemorySpanExporter, method: str
) -> None:
    echo, channel = echo_channel
    with trace.get_tracer("tests").start_as_current_span("caller") as caller:
        responses = await call(channel, method)
    assert responses
    expected = caller.get_span_context()
    assert [c.trace_id for c in echo.seen] == [expected.trace_id]
    [span] = server_spans(spans)
    assert span.name == f"{SERVICE}/{method}"
    assert span.context is not None
    assert span.context.trace_id == expected.trace_id
    assert span.parent is not None
    assert span.parent.span_id == expected.span_id
    assert echo.seen[0].span_id == span.context.span_id  # the handler ran inside it
    assert span.attributes is not None
    assert span.attributes["rpc.method"] == method


async def test_a_grpc_call_outside_any_span_starts_a_new_trace(
    echo_channel: tuple[Echo, Any], spans: InMemorySpanExporter
) -> None:
    echo, channel = echo_channel
    await call(channel, "UnaryUnary")
    [span] = server_spans(spans)
    assert span.parent is None
    assert echo.seen[0].is_valid


async def test_health_checks_are_not_traced(spans: InMemorySpanExporter) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    server = GrpcServer(name="quiet")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    finally:
        await server.stop()
    assert server_spans(spans) == []


@pytest.fixture
async def traced_app_url() -> AsyncIterator[str]:
    app = build_http_app(service="galley", readiness=lambda: True)
    router = APIRouter()

    @router.get("/hello/{who}")
    async def hello(who: str) -> dict[str, str]:
        context = trace.get_current_span().get_span_context()
        return {"who": who, "trace_id": f"{context.trace_id:032x}"}

    app.include_router(router)
    server = HttpServer(app, name="traced", grace=1)
    await server.start()
    yield f"http://127.0.0.1:{server.port}"
    await server.stop()


async def test_an_http_request_with_traceparent_gets_a_server_span_in_that_trace(
    traced_app_url: str, spans: InMemorySpanExporter
) -> None:
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    headers = {"traceparent": f"00-{trace_id}-{parent_id}-01"}
    async with httpx.AsyncClient(base_url=traced_app_url) as client:
        response = await client.get("/hello/pilot", headers=headers)
        await client.get("/healthz", headers=headers)
    assert response.json() == {"who": "pilot", "trace_id": trace_id}
    [span] = server_spans(spans)  # /healthz is not traced
    assert span.name == "GET /hello/{who}"
    assert span.context is not None
    assert f"{span.context.trace_id:032x}" == trace_id
    assert span.parent is not None
    assert f"{span.parent.span_id:016x}" == parent_id
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 200


async def test_inject_headers_carries_the_trace_over_httpx(
    traced_app_url: str, spans: InMemorySpanExporter
) -> None:
    async with httpx.AsyncClient(base_url=traced_app_url) as client:
        with trace.get_tracer("tests").start_as_current_span("caller") as caller:
            response = await client.get("/hello/mixer", headers=inject_headers({}))
    assert response.json()["trace_id"] == f"{caller.get_span_context().trace_id:032x}"


async def test_a_server_error_marks_the_span(spans: InMemorySpanExporter) -> None:
    def broken() -> object:
        raise RuntimeError("boom")

    app = build_http_app(service="mixer", readiness=lambda: True, debug={"broken": broken})
    server = HttpServer(app)
    await server.start()
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{server.port}/debug/broken")
    finally:
        await server.stop()
    assert response.status_code == 500
    [span] = server_spans(spans)
    assert span.name == "GET /debug/{name}"
    assert span.status.status_code == trace.StatusCode.ERROR
