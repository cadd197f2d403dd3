"""Mixer: Check server-side (target p50 ≤ 0.3 ms), redisquota decision (target p99 ≤ 2 ms)
and access-log ingestion (target ≥ 10,000 entries/s).

- ``check``: Mixer's core in this process, on :data:`bench.mixer_workload.POLICY_CONFIG`
  plus the built-in standard telemetry, answering ext_authz ``CheckRequest`` messages
  through the real servicer (bag, check cache, rules, AuthorizationPolicies, response),
  timed one by one: what Mixer spends per Check once gRPC has decoded it. Two request
  mixes: ``cached`` (20 users and 50 paths, so decisions repeat, as in a steady mesh) and
  ``uncached`` (a new user on every request: the blacklist reads it, so every Check is
  evaluated). The target applies to the uncached p50.
- ``quota``: the RLS servicer against a real ``redis-server`` (redisquota, rolling
  window, 100 source workloads), one decision at a time: Mixer's work plus one Redis
  round trip with the Lua script.
- ``ingestion``: Mixer as a real process (``--role telemetry``, no Galley, so only the
  standard metrics) receiving pre-serialized ALS messages of 100 entries on several
  streams; the rate counts from the first message sent until ``istio_requests_total``
  on ``/metrics`` has counted every entry. Mixer's CPU seconds per 10,000 entries are
  reported too.

Mixer's own telemetry is configured as in production (its counters cost what they
cost). The benchmark owns the Redis and Mixer processes and ``work_dir``.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import time
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench import procstat
from bench.mixer_workload import (
    access_log_message,
    check_request,
    policy_resources,
    rate_limit_request,
)
from bench.registry import Benchmark, RunContext
from bench.results import Figure, Result, Target, percentile_figures
from bench.stats import median, percentiles
from services.mixer.adapters.ext_authz import ExtAuthzServicer
from services.mixer.adapters.ratelimit import RateLimitServicer
from services.mixer.adapters.static_feed import static_feed_factory
from services.mixer.app import build_mixer
from services.mixer.settings import MixerSettings
from shared.process import ServiceProcess, python_module
from shared.telemetry import configure_telemetry

TARGET_CHECK_P50_MS = Target("<=", 0.3)
TARGET_QUOTA_P99_MS = Target("<=", 2)
TARGET_INGESTION = Target(">=", 10_000)
_START_TIMEOUT_S = 30.0
_BATCH = 100
_ALS = "/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs"


@dataclass(frozen=True, slots=True)
class _Size:
    checks: int
    quotas: int
    entries: int
    streams: int
    runs: int


_FULL = _Size(checks=20_000, quotas=5_000, entries=100_000, streams=4, runs=3)
_QUICK = _Size(checks=300, quotas=100, entries=2_000, streams=2, runs=1)


def run(context: RunContext) -> Result:
    """Run the three measurements (module docstring)."""
    size = _QUICK if context.quick else _FULL
    configure_telemetry("mixer-bench", otlp_endpoint=None)
    latencies = asyncio.run(_in_process(context, size))
    rates, cpu = asyncio.run(_ingestion(context, size))
    figures = [
        *percentile_figures("Check server-side, cached", latencies["cached"], "ms"),
        *_with_p50_target("Check server-side, uncached", latencies["uncached"]),
        *percentile_figures(
            "redisquota decision", latencies["quota"], "ms", target_p99=TARGET_QUOTA_P99_MS
        ),
        Figure("ALS ingestion (median run)", median(rates), "entries/s", TARGET_INGESTION),
        Figure("Mixer CPU per 10,000 entries", cpu, "CPU-s"),
    ]
    return Result(
        benchmark=BENCHMARK.name,
        figures=tuple(figures),
        parameters={
            "checks per mix": size.checks,
            "quota decisions": size.quotas,
            "entries per run": size.entries,
            "streams": size.streams,
            "entries per message": _BATCH,
            "runs": size.runs,
        },
        notes=(
            "Check and quota run Mixer's servicers in this process (no gRPC transport); "
            "ingestion runs Mixer as a process, the sender in this one, on the same cores.",
        ),
    )


def _with_p50_target(name: str, samples: list[float]) -> list[Figure]:
    cuts = percentiles(samples)
    return [
        Figure(f"{name} {key}", value, "ms", TARGET_CHECK_P50_MS if key == "p50" else None)
        for key, value in cuts.items()
    ]


async def _in_process(context: RunContext, size: _Size) -> dict[str, list[float]]:
    redis = _Redis(context)
    redis.start()
    try:
        settings = MixerSettings(grpc_port=0, http_port=0, role="policy").validate()
        resources = policy_resources(f"127.0.0.1:{redis.port}")
        mixer = build_mixer(settings, feed_factory=static_feed_factory(resources))
        await mixer.host.start()
        try:
            if mixer.runtime.current.issues:
                raise RuntimeError(f"bench config has issues: {mixer.runtime.current.issues}")
            check = ExtAuthzServicer(mixer.policy)
            quota = RateLimitServicer(mixer.policy)
            found: dict[str, list[float]] = {}
            for mix in ("cached", "uncached"):
                context.progress(f"Check server-side, {mix}: {size.checks} requests")
                requests = [
                    check_request(n, f"user-{n % 20 if mix == 'cached' else n}")
                    for n in range(size.checks)
                ]
                found[mix] = await _timed(check.Check, requests)
            context.progress(f"redisquota decisions: {size.quotas}")
            await _timed(quota.ShouldRateLimit, [rate_limit_request(n) for n in range(100)])
            requests = [rate_limit_request(n) for n in range(100, 100 + size.quotas)]
            found["quota"] = await _timed(quota.ShouldRateLimit, requests)
            return found
        finally:
            await mixer.host.stop()
    finally:
        redis.stop()


async def _timed(call: Any, requests: list[Any]) -> list[float]:
    """Milliseconds per call, the calls made one after the other."""
    latencies = []
    gc.collect()
    gc.freeze()  # what Mixer's process does once started: old objects leave the GC's scans
    for request in requests:
        begun = time.perf_counter()
        response = await call(request, None)
        latencies.append((time.perf_counter() - begun) * 1000)
        if getattr(response, "overall_code", 1) == 2:
            raise RuntimeError("a quota decision was refused: the bench quota is too small")
    return latencies


async def _ingestion(context: RunContext, size: _Size) -> tuple[list[float], float]:
    ports_file = context.work_dir / "mixer-ports.json"
    process = ServiceProcess(
        python_module("services.mixer"),
        log_path=context.work_dir / "mixer.log",
        env={
            "SPLITMESH_MIXER_ROLE": "telemetry",
            "SPLITMESH_MIXER_GRPC_PORT": "0",
            "SPLITMESH_MIXER_HTTP_PORT": "0",
            "SPLITMESH_MIXER_GALLEY_ADDRESS": "127.0.0.1:1",  # none: built-in metrics only
            "SPLITMESH_MIXER_PORTS_FILE": str(ports_file),
            "SPLITMESH_MIXER_LOG_LEVEL": "error",
        },
        ports_file=ports_file,
    )
    process.start()
    try:
        ports = process.wait_ready(_START_TIMEOUT_S)
        pid = process.pid
        if pid is None:
            raise RuntimeError("Mixer has no pid")
        per_stream = size.entries // size.streams
        streams = [
            [
                access_log_message(s * per_stream + i, _BATCH, identify=i == 0)
                for i in range(0, per_stream, _BATCH)
            ]
            for s in range(size.streams)
        ]
        sent = len(streams) * per_stream
        rates, cpu = [], 0.0
        async with grpc.aio.insecure_channel(f"127.0.0.1:{ports['grpc']}") as channel:
            send = channel.stream_unary(_ALS, request_serializer=bytes, response_deserializer=bytes)
            for number in range(1, size.runs + 1):
                context.progress(f"ALS ingestion: run {number}/{size.runs}, {sent} entries")
                before = _counted(ports["http"])
                cpu_before = procstat.cpu_seconds(pid)
                started = time.perf_counter()
                await asyncio.gather(*(send(_messages(messages)) for messages in streams))
                while _counted(ports["http"]) < before + sent:
                    if time.perf_counter() - started > 120:
                        raise RuntimeError(f"Mixer did not count every entry: {process.log_tail()}")
                    await asyncio.sleep(0.01)
                rates.append(sent / (time.perf_counter() - started))
                cpu += procstat.cpu_seconds(pid) - cpu_before
    finally:
        process.stop()
    return rates, cpu / (sent * size.runs) * 10_000


async def _messages(messages: list[bytes]) -> Any:
    for message in messages:
        yield message


def _counted(http_port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{http_port}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "istio_requests_total"
    )


class _Redis:
    """A ``redis-server`` on a free port below ``work_dir``."""

    def __init__(self, context: RunContext) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._process = ServiceProcess(
            ["redis-server", "--save", "", "--appendonly", "no", "--bind", "127.0.0.1",
             "--port", str(self.port)],
            log_path=context.work_dir / "redis.log",
        )  # fmt: skip

    def start(self) -> None:
        self._process.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._answers():
            if not self._process.running() or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: {self._process.log_tail()}")
            time.sleep(0.01)

    def stop(self) -> None:
        self._process.stop()

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


BENCHMARK = Benchmark(
    name="mixer-check",
    summary="Mixer Check and quota latency server-side, ALS ingestion rate",
    run=run,
)
