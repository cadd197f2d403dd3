"""HttpServer and the admin app on real loopback sockets: probes, metrics, debug, HTTPS."""

from __future__ import annotations

import dataclasses
import re
import signal
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from opentelemetry import metrics
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.http_server import HttpServer, build_http_app
from shared.tls import self_signed_certificate, write_key_pair


@dataclasses.dataclass
class Snapshot:
    version: int
    clusters: list[str]


class Flag:
    def __init__(self) -> None:
        self.ready = False

    def __call__(self) -> bool:
        return self.ready


@pytest.fixture
def readiness() -> Flag:
    return Flag()


@pytest.fixture
async def base_url(readiness: Flag) -> AsyncIterator[str]:
    app = build_http_app(
        service="pilot",
        readiness=readiness,
        debug={"snapshot": lambda: Snapshot(3, ["a", "b"]), "config": lambda: {"mesh": "x"}},
    )
    server = HttpServer(app, name="pilot-http", grace=1)
    await server.start()
    yield f"http://127.0.0.1:{server.port}"
    await server.stop()


async def test_healthz_answers_while_serving(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.text == "ok"


async def test_readyz_follows_readiness(base_url: str, readiness: Flag) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        not_ready = await client.get("/readyz")
        readiness.ready = True
        ready = await client.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.text == "pilot is not ready"
    assert ready.status_code == 200


async def test_readyz_reports_a_failing_check(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> bool:
        raise ConnectionError("galley unreachable")

    server = HttpServer(build_http_app(service="mixer", readiness=broken))
    await server.start()
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{server.port}/readyz")
    finally:
        await server.stop()
    assert response.status_code == 503
    assert "galley unreachable" in response.text
    assert "readiness check of mixer failed" in caplog.text


async def test_metrics_show_an_incremented_counter_and_request_durations(
    base_url: str, spans: InMemorySpanExporter
) -> None:
    # `spans` configures the process's telemetry (MeterProvider + Prometheus reader).
    metrics.get_meter("tests").create_counter("splitmesh_test_pushes").add(3)
    async with httpx.AsyncClient(base_url=base_url) as client:
        await client.get("/debug")
        await client.get("/healthz")
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert re.search(r"^splitmesh_test_pushes_total(\{[^}]*\})? 3\.0$", response.text, re.M)
    assert "process_cpu_seconds_total" in response.text
    requests = re.findall(r"^http_server_request_duration_seconds_count\{.*$", response.text, re.M)
    assert any('http_route="/debug"' in line for line in requests)
    assert not any('http_route="/healthz"' in line for line in requests)  # probes not counted


async def test_debug_lists_and_serves_views(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        index = await client.get("/debug")
        snapshot = await client.get("/debug/snapshot")
        missing = await client.get("/debug/nope")
    assert index.json() == {"service": "pilot", "debug": ["config", "snapshot"]}
    assert snapshot.json() == {"version": 3, "clusters": ["a", "b"]}
    assert missing.status_code == 404


async def test_routers_added_before_start_are_served() -> None:
    app = build_http_app(service="injector", readiness=lambda: True)
    router = APIRouter()

    @router.post("/inject")
    async def inject(body: dict[str, str]) -> dict[str, str]:
        return {"patched": body["pod"]}

    app.include_router(router)
    server = HttpServer(app)
    await server.start()
    try:
        async with httpx.AsyncClient() as client:
            url = f"http://127.0.0.1:{server.port}/inject"
            response = await client.post(url, json={"pod": "web-1"})
    finally:
        await server.stop()
    assert response.json() == {"patched": "web-1"}


async def test_https_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = self_signed_certificate("galley", ["localhost", "127.0.0.1"])
    cert_path, key_path = write_key_pair(tmp_path, cert, key)
    app = build_http_app(service="galley", readiness=lambda: True)
    server = HttpServer(app, name="webhook", tls_cert=cert_path, tls_key=key_path)
    await server.start()
    url = f"https://127.0.0.1:{server.port}/healthz"
    try:
        trusting = ssl.create_default_context(cafile=str(cert_path))
        async with httpx.AsyncClient(verify=trusting) as client:
            response = await client.get(url)
        async with httpx.AsyncClient() as untrusting:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusting.get(url)
    finally:
        await server.stop()
    assert response.status_code == 200
    assert response.text == "ok"


async def test_stop_is_idempotent_and_closes_the_port() -> None:
    app = FastAPI()
    server = HttpServer(app)
    await server.start()
    port = server.port
    await server.stop()
    await server.stop()
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/")


async def test_a_taken_port_fails_start(base_url: str) -> None:
    taken = int(base_url.rsplit(":", 1)[1])
    server = HttpServer(FastAPI(), name="second", port=taken)
    with pytest.raises(OSError, match="cannot listen"):
        await server.start()
    await server.stop()


async def test_serving_leaves_signal_handlers_to_the_host() -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    server = HttpServer(FastAPI())
    await server.start()
    try:
        during = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    finally:
        await server.stop()
    assert during == before


def test_tls_needs_both_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="both tls_cert and tls_key"):
        HttpServer(FastAPI(), tls_cert=tmp_path / "tls.crt")
