"""GrpcServer on real loopback sockets: health, reflection, graceful stop, ports, TLS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from shared.grpc_server import GrpcServer
from shared.tls import self_signed_certificate

AUTHZ = "envoy.service.auth.v3.Authorization"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class AllowAll(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
    async def Check(self, request: Any, context: Any) -> Any:  # noqa: N802 -- gRPC name
        return external_auth_pb2.CheckResponse()


@pytest.fixture
async def server() -> AsyncIterator[GrpcServer]:
    grpc_server = GrpcServer(name="test-grpc", grace=0.5)
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(AllowAll(), grpc_server.server)
    await grpc_server.start()
    yield grpc_server
    await grpc_server.stop()


async def check(port: int, service: str, *, deadline: float = 5.0) -> Any:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = await stub.Check(
            health_pb2.HealthCheckRequest(service=service), timeout=deadline
        )
        return response.status


async def test_health_answers_serving_for_the_server_and_each_registered_service(
    server: GrpcServer,
) -> None:
    assert server.port > 0
    assert await check(server.port, "") == SERVING
    assert await check(server.port, AUTHZ) == SERVING
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await check(server.port, "no.such.Service")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_registered_servicers_serve(server: GrpcServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = external_auth_pb2_grpc.AuthorizationStub(channel)
        response = await stub.Check(external_auth_pb2.CheckRequest(), timeout=5)
    assert response.status.code == 0


async def test_reflection_lists_the_registered_services(server: GrpcServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        responses = [r async for r in stub.ServerReflectionInfo(iter([request]), timeout=5)]
    names = {s.name for s in responses[0].list_services_response.service}
    assert {AUTHZ, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names


async def test_set_serving_before_and_after_start() -> None:
    grpc_server = GrpcServer(name="flags")
    await grpc_server.set_serving("splitmesh.mcp.v1.ResourceSource", serving=False)
    await grpc_server.start()
    try:
        assert await check(grpc_server.port, "splitmesh.mcp.v1.ResourceSource") == NOT_SERVING
        await grpc_server.set_serving("splitmesh.mcp.v1.ResourceSource")
        assert await check(grpc_server.port, "splitmesh.mcp.v1.ResourceSource") == SERVING
    finally:
        await grpc_server.stop()


async def test_stop_reports_not_serving_then_becomes_unreachable(server: GrpcServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        assert (await asyncio.wait_for(watch.read(), 5)).status == SERVING
        stopping = asyncio.create_task(server.stop())
        assert (await asyncio.wait_for(watch.read(), 5)).status == NOT_SERVING
        await asyncio.wait_for(stopping, 10)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await check(server.port, "", deadline=2)
    assert caught.value.code() in {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
    await server.stop()  # idempotent


async def test_two_servers_never_share_a_port(server: GrpcServer) -> None:
    other = GrpcServer(name="other")
    await other.start()
    try:
        assert other.port != server.port
    finally:
        await other.stop()
    clash = GrpcServer(name="clash", port=server.port)
    with pytest.raises(OSError, match="clash: cannot listen"):
        await clash.start()
    await clash.stop()
    assert await check(server.port, "") == SERVING


async def test_tls_credentials_serve_over_tls() -> None:
    cert, key = self_signed_certificate("citadel", ["127.0.0.1"])
    grpc_server = GrpcServer(name="tls", credentials=grpc.ssl_server_credentials([(key, cert)]))
    await grpc_server.start()
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=cert)
        async with grpc.aio.secure_channel(f"127.0.0.1:{grpc_server.port}", credentials) as ch:
            response = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        assert response.status == SERVING
    finally:
        await grpc_server.stop()


async def test_port_is_unknown_before_start_and_start_is_once() -> None:
    grpc_server = GrpcServer()
    with pytest.raises(RuntimeError, match="not started"):
        _ = grpc_server.port
    await grpc_server.start()
    try:
        with pytest.raises(RuntimeError, match="already started"):
            await grpc_server.start()
    finally:
        await grpc_server.stop()


def test_the_server_needs_a_running_event_loop() -> None:
    with pytest.raises(RuntimeError):
        _ = GrpcServer().server
