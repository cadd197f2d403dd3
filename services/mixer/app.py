"""Mixer's composition root: settings in, a host of started-in-order components out.

:func:`build_mixer` wires the core (config runtime, dispatcher, check cache, load
shedder, report batcher) to its adapters: the config feed (Galley over MCP unless a
``feed_factory`` is given — the monolith and tests hand in their own), the compiled-in
adapters plus ``redisquota`` (Redis pools) and ``opentelemetry`` (OTLP), the
Envoy-facing servicers of its role on one gRPC server, the Prometheus collector of the
``prometheus`` adapter and the admin HTTP server (``/debug/configz``, ``/debug/cachez``,
``/debug/reportz``). Nothing listens or connects until ``mixer.host.start()``.

Start order: handlers' closer, Redis pools, Prometheus collector, report batcher,
config feed, loop-lag monitor, gRPC, admin HTTP, a ``gc.freeze`` of the start-up heap,
ports file; stop goes in reverse, so
the gRPC server drains before queued reports are dispatched, and handlers (files,
exporters) close last. Readiness: every collection received from the feed once.
"""

from __future__ import annotations

import gc
import os
import socket
import sys
import time
from dataclasses import dataclass
from typing import Protocol

from services.mixer.adapters import access_log, ext_authz, ratelimit
from services.mixer.adapters.otlp import OpenTelemetryBuilder
from services.mixer.adapters.prometheus_collector import MetricStoreCollector
from services.mixer.adapters.redis_quota import RedisClients, RedisquotaBuilder
from services.mixer.core.check_cache import CheckCache
from services.mixer.core.compiler import CompileOptions
from services.mixer.core.dispatcher import CheckDecision, Dispatcher
from services.mixer.core.handlers.base import HandlerBuilder
from services.mixer.core.handlers.denier import DenierBuilder
from services.mixer.core.handlers.listchecker import ListCheckerBuilder
from services.mixer.core.handlers.prometheus import PrometheusBuilder
from services.mixer.core.handlers.quota import MemquotaBuilder
from services.mixer.core.handlers.stdio import StdioBuilder
from services.mixer.core.loadshed import LoadShedder, LoopLagMonitor
from services.mixer.core.memory_quota import MemoryQuotaBackend
from services.mixer.core.metric_store import MetricStore
from services.mixer.core.policy import PolicyService
from services.mixer.core.reporter import Reporter
from services.mixer.core.runtime import ConfigRuntime
from services.mixer.core.self_metrics import MixerMetrics
from services.mixer.core.standard_telemetry import standard_telemetry
from services.mixer.ports import MIXER_COLLECTIONS, ConfigFeed, FeedFactory, SnapshotHandler
from services.mixer.settings import MixerSettings
from shared.contracts.mcp.client import McpClient
from shared.grpc_server import GrpcServer
from shared.http_server import HttpServer, build_http_app
from shared.lifecycle import Component, ComponentHost
from shared.ports_file import PortsFile


@dataclass(frozen=True)
class Mixer:
    """The wired service. ``host`` owns the life of every component."""

    settings: MixerSettings
    runtime: ConfigRuntime
    policy: PolicyService
    reporter: Reporter
    feed: ConfigFeed
    metric_store: MetricStore
    grpc: GrpcServer
    admin: HttpServer
    host: ComponentHost

    def ports(self) -> dict[str, int]:
        """The bound ports (valid once started): ``grpc`` and ``http``."""
        return {"grpc": self.grpc.port, "http": self.admin.port}


def build_mixer(settings: MixerSettings, *, feed_factory: FeedFactory | None = None) -> Mixer:
    """Wire Mixer from validated ``settings``; see the module docstring.

    Call it from inside the event loop that will run the host.
    """
    metrics = MixerMetrics()
    store = MetricStore()
    redis_clients = RedisClients(override_url=settings.redis_url, timeout=settings.quota_timeout_s)
    runtime = ConfigRuntime(
        builders=_builders(settings, store, redis_clients),
        options=CompileOptions(
            check_fail_open=settings.check_fail_open,
            extra=standard_telemetry if settings.standard_telemetry else None,
        ),
        metrics=metrics,
    )
    dispatcher = Dispatcher(
        metrics=metrics,
        default_ttl=settings.check_cache_ttl_s,
        default_uses=settings.check_cache_uses,
    )
    shedder = LoadShedder(budget=settings.load_shed_budget_ms / 1000)
    cache: CheckCache[CheckDecision] = CheckCache(
        max_entries=settings.check_cache_entries, clock=time.monotonic
    )
    policy = PolicyService(
        runtime=runtime,
        dispatcher=dispatcher,
        cache=cache,
        shedder=shedder,
        metrics=metrics,
        quota_timeout=settings.quota_timeout_s,
        quota_fail_open=settings.quota_fail_open,
    )
    reporter = Reporter(
        runtime=runtime,
        dispatcher=dispatcher,
        metrics=metrics,
        max_entries=settings.report_batch_max_entries,
        max_delay=settings.report_batch_max_time_s,
        queue_size=settings.report_queue_size,
    )
    feed = (feed_factory or _mcp_feed(settings))(runtime.apply)
    grpc = GrpcServer(host=settings.host, port=settings.grpc_port, name=f"mixer-{settings.role}")
    if settings.serves_policy:
        ext_authz.register(grpc.server, policy)
        ratelimit.register(grpc.server, policy)
    if settings.serves_telemetry:
        access_log.register(grpc.server, reporter, metrics)
    admin = HttpServer(
        build_http_app(
            service="mixer",
            readiness=feed.has_synced,
            debug={
                "configz": runtime.status,
                "cachez": lambda: {"entries": len(cache), "shapes": cache.shapes},
                "reportz": lambda: {"pending": reporter.pending},
            },
        ),
        host=settings.host,
        port=settings.http_port,
        name="mixer-http",
    )
    components: list[Component] = [
        _HandlersCloser(runtime),
        redis_clients,
        MetricStoreCollector(store),
        reporter,
        feed,
        LoopLagMonitor(shedder),
        grpc,
        admin,
    ]
    components.append(_FrozenHeap())
    if settings.ports_file is not None:
        components.append(PortsFile(settings.ports_file, {"grpc": grpc, "http": admin}))
    return Mixer(
        settings=settings,
        runtime=runtime,
        policy=policy,
        reporter=reporter,
        feed=feed,
        metric_store=store,
        grpc=grpc,
        admin=admin,
        host=ComponentHost(components, name=f"mixer-{settings.role}"),
    )


def _builders(
    settings: MixerSettings, store: MetricStore, redis_clients: RedisClients
) -> dict[str, HandlerBuilder]:
    return {
        "denier": DenierBuilder(),
        "listchecker": ListCheckerBuilder(),
        "memquota": MemquotaBuilder(MemoryQuotaBackend(), time.time),
        "redisquota": RedisquotaBuilder(redis_clients, time.time),
        "prometheus": PrometheusBuilder(store),
        "stdio": StdioBuilder(
            streams={"STDOUT": sys.stdout, "STDERR": sys.stderr}, clock=time.time
        ),
        "opentelemetry": OpenTelemetryBuilder(export_interval=settings.otel_export_interval_s),
    }


def _mcp_feed(settings: MixerSettings) -> FeedFactory:
    sink_id = f"mixer-{settings.role}@{socket.gethostname()}:{os.getpid()}"

    def make(handler: SnapshotHandler) -> ConfigFeed:
        return McpClient(
            target=settings.galley_address,
            sink_id=sink_id,
            collections=MIXER_COLLECTIONS,
            handler=handler,
            max_backoff=settings.mcp_max_backoff_s,
        )

    return make


class _HandlersCloser:
    """Closes the config's handlers when the host stops (it starts first, stops last)."""

    name = "mixer-handlers"

    def __init__(self, runtime: ConfigRuntime) -> None:
        self._runtime = runtime

    async def start(self) -> None:
        """Nothing to start: handlers are built with each config version."""

    async def stop(self) -> None:
        """Close every handler. Idempotent."""
        await self._runtime.close()


class _FrozenHeap:
    """Once everything is up, moves the start-up heap out of the garbage collector's scans.

    Per-request garbage is young; the large, long-lived start-up heap (modules, protos,
    config) made full collections pause requests for milliseconds (``gc.freeze``).
    """

    name = "gc-freeze"

    async def start(self) -> None:
        """Collect once, then freeze what survived."""
        gc.collect()
        gc.freeze()

    async def stop(self) -> None:
        """Return the frozen objects to the collector. Idempotent."""
        gc.unfreeze()


class _Listener(Protocol):
    @property
    def port(self) -> int: ...
