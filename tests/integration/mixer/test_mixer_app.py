"""The composition root in-process: roles, readiness, load shedding, debug pages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
import httpx
from envoy.service.accesslog.v3 import als_pb2_grpc
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.mixer.app import Mixer, build_mixer
from services.mixer.settings import MixerSettings

DENY_ALL = """
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {name: deny, namespace: istio-system}
spec: {compiledAdapter: denier}
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {name: nothing, namespace: istio-system}
spec: {compiledTemplate: checknothing}
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {name: deny, namespace: istio-system}
spec: {actions: [{handler: deny, instances: [nothing]}]}
"""


@asynccontextmanager
async def running(feed: Callable[..., Any], **settings: Any) -> AsyncIterator[Mixer]:
    values = {"grpc_port": 0, "http_port": 0, **settings}
    mixer = build_mixer(MixerSettings(**values).validate(), feed_factory=feed)
    await mixer.host.start()
    try:
        yield mixer
    finally:
        await mixer.host.stop()


async def call(mixer: Mixer, api: str) -> grpc.StatusCode:
    """Call one Envoy-facing API with an empty request; the status code."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mixer.ports()['grpc']}") as channel:
        try:
            if api == "check":
                await external_auth_pb2_grpc.AuthorizationStub(channel).Check(
                    external_auth_pb2.CheckRequest(), timeout=10
                )
            elif api == "quota":
                await rls_pb2_grpc.RateLimitServiceStub(channel).ShouldRateLimit(
                    rls_pb2.RateLimitRequest(), timeout=10
                )
            else:

                async def nothing() -> AsyncIterator[Any]:
                    return
                    yield

                await als_pb2_grpc.AccessLogServiceStub(channel).StreamAccessLogs(
                    nothing(), timeout=10
                )
        except grpc.aio.AioRpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


async def test_each_role_serves_only_its_apis(static_feed) -> None:
    expected = {
        "policy": {
            "check": grpc.StatusCode.OK,
            "quota": grpc.StatusCode.OK,
            "report": grpc.StatusCode.UNIMPLEMENTED,
        },
        "telemetry": {
            "check": grpc.StatusCode.UNIMPLEMENTED,
            "quota": grpc.StatusCode.UNIMPLEMENTED,
            "report": grpc.StatusCode.OK,
        },
        "all": dict.fromkeys(("check", "quota", "report"), grpc.StatusCode.OK),
    }
    for role, codes in expected.items():
        async with running(static_feed(""), role=role) as mixer:
            assert {api: await call(mixer, api) for api in codes} == codes, role


async def test_grpc_health_reports_the_role_services_serving(static_feed) -> None:
    async with running(static_feed(""), role="policy") as mixer:
        target = f"127.0.0.1:{mixer.ports()['grpc']}"
        async with grpc.aio.insecure_channel(target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            answers = {
                service: (await health.Check(health_pb2.HealthCheckRequest(service=service))).status
                for service in (
                    "envoy.service.auth.v3.Authorization",
                    "envoy.service.ratelimit.v3.RateLimitService",
                )
            }
        assert set(answers.values()) == {health_pb2.HealthCheckResponse.SERVING}


async def test_ready_once_every_collection_arrived(static_feed) -> None:
    factory = static_feed(DENY_ALL, hold=True)
    async with running(factory) as mixer:
        url = f"http://127.0.0.1:{mixer.ports()['http']}"
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/readyz")).status_code == 503
            await static_feed.feeds[-1].release()
            assert (await client.get("/readyz")).status_code == 200
            configz = (await client.get("/debug/configz")).json()
            assert configz["rules"]["check"] == 1
            assert "deny.handler.istio-system" in configz["handlers"]
            await call(mixer, "check")
            await call(mixer, "check")
            assert (await client.get("/debug/cachez")).json() == {"entries": 1, "shapes": 1}


async def test_over_the_latency_budget_calls_fail_unavailable(static_feed) -> None:
    async with running(static_feed(DENY_ALL), load_shed_budget_ms=0.0001) as mixer:
        # The loop-lag monitor samples every 20 ms; any lag is over a 0.1 µs budget.
        for _ in range(200):
            if await call(mixer, "check") is grpc.StatusCode.UNAVAILABLE:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("Check was never shed")
        # The same process keeps taking reports meanwhile.
        assert await call(mixer, "report") is grpc.StatusCode.OK
