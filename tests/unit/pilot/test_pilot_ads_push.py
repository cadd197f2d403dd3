"""Push machinery without gRPC: debounce, the generation cache, its limit, failed generation."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Hashable, Mapping
from typing import Any

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from services.pilot.core.ads.cache import GenerationCache
from services.pilot.core.ads.debounce import PushDebouncer
from services.pilot.core.ads.metrics import AdsMetrics
from services.pilot.core.ads.resources import PackedConfig
from services.pilot.core.ads.selection import PackedResource
from services.pilot.core.ads.server import DiscoveryServer
from services.pilot.core.ads.sotw import SotwConnection
from services.pilot.core.model import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    Proxy,
    ProxyConfig,
    parse_proxy,
)
from services.pilot.core.registry import services_from_service_entries
from services.pilot.core.snapshot import MeshSnapshot
from services.pilot.core.xds import generate as xds_generate
from services.pilot.core.xds.generate import ClusterConfig, OutboundScope, SharedConfig
from shared.config import parse_yaml

CATALOG = "outbound|8080||catalog.shop.svc.cluster.local"
ENTRIES = """
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {name: catalog, namespace: shop}
spec:
  hosts: [catalog.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: 18081}}]
"""
REVIEWS = "outbound|9080||reviews.shop.svc.cluster.local"
TWO_SERVICES = """---
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.3, ports: {http: 19081}}]
"""


def mesh(version: str, text: str = ENTRIES) -> MeshSnapshot:
    resources = parse_yaml(text, "test.yaml").resources
    return MeshSnapshot.build(resources, services_from_service_entries(resources), version=version)


def sidecar(workload: str, namespace: str = "shop", inbound_port: int = 18081) -> Proxy:
    return parse_proxy(
        f"sidecar~127.0.0.1~{workload}.{namespace}~{namespace}.svc.cluster.local",
        {
            "SPLITMESH_OUTBOUND_PORT": 15001,
            "SPLITMESH_INBOUND": [
                {
                    "port": inbound_port,
                    "app_port": 28081,
                    "service": "catalog.shop.svc.cluster.local",
                }
            ],
        },
    )


class CountingTranslation:
    """The real translation, counting calls; it can be slowed down or made to fail."""

    def __init__(self, *, delay: float = 0.0, fail_version: str | None = None) -> None:
        self.cluster_calls: list[str] = []
        self.shared_calls: list[str] = []
        self.refresh_calls: list[str] = []
        self.proxy_calls: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._delay = delay
        self._fail_version = fail_version
        self._lock = threading.Lock()

    def scope_key(self, snapshot: MeshSnapshot, proxy: Proxy) -> Hashable:
        return xds_generate.scope_key(snapshot, proxy)

    def shared_key(self, snapshot: MeshSnapshot, proxy: Proxy) -> Hashable:
        return xds_generate.shared_key(snapshot, proxy)

    def outbound_scope(self, snapshot: MeshSnapshot, proxy: Proxy) -> OutboundScope:
        return xds_generate.outbound_scope(snapshot, proxy)

    def generate_clusters(self, snapshot: MeshSnapshot, outbound: OutboundScope) -> ClusterConfig:
        with self._lock:
            self.cluster_calls.append(outbound.scope.namespace)
        return xds_generate.generate_clusters(snapshot, outbound)

    def refresh_clusters(self, snapshot: MeshSnapshot, earlier: ClusterConfig) -> ClusterConfig:
        with self._lock:
            self.refresh_calls.append(earlier.key)
        return xds_generate.refresh_clusters(snapshot, earlier)

    def generate_shared(
        self,
        snapshot: MeshSnapshot,
        proxy: Proxy,
        *,
        outbound: OutboundScope | None = None,
        clusters: ClusterConfig | None = None,
    ) -> SharedConfig:
        with self._lock:
            self.shared_calls.append(proxy.namespace)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self._delay)
            if snapshot.version == self._fail_version:
                raise RuntimeError(f"translation bug at {snapshot.version}")
            return xds_generate.generate_shared(
                snapshot, proxy, outbound=outbound, clusters=clusters
            )
        finally:
            with self._lock:
                self.in_flight -= 1

    def refresh_endpoints(
        self,
        snapshot: MeshSnapshot,
        proxy: Proxy,
        earlier: SharedConfig,
        *,
        clusters: ClusterConfig | None = None,
    ) -> SharedConfig:
        return xds_generate.refresh_endpoints(snapshot, proxy, earlier, clusters=clusters)

    def generate_own(
        self, snapshot: MeshSnapshot, proxy: Proxy, shared: SharedConfig
    ) -> ProxyConfig:
        with self._lock:
            self.proxy_calls.append(proxy.id)
        return xds_generate.generate_own(snapshot, proxy, shared)


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


def metrics(reader: InMemoryMetricReader) -> AdsMetrics:
    return AdsMetrics(MeterProvider(metric_readers=[reader]).get_meter("test"))


def counter(reader: InMemoryMetricReader, name: str, **attributes: str) -> float:
    data = reader.get_metrics_data()
    return sum(
        getattr(point, "value", 0)
        for resource in (data.resource_metrics if data else ())
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
        if attributes.items() <= dict(point.attributes or {}).items()
    )


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while True:
            if condition():
                return
            await asyncio.sleep(0.005)


# --- debounce -------------------------------------------------------------------------------


class Releases:
    def __init__(self) -> None:
        self.seen: list[tuple[str, bool, float]] = []

    def __call__(self, snapshot: MeshSnapshot, full: bool) -> None:
        self.seen.append((snapshot.version, full, asyncio.get_running_loop().time()))


async def test_a_burst_is_released_once_with_the_newest_snapshot() -> None:
    releases = Releases()
    debouncer = PushDebouncer(releases, quiet=0.05, max_delay=5.0)
    debouncer.trigger(mesh("v1"), full=False)
    debouncer.trigger(mesh("v2"), full=True)
    debouncer.trigger(mesh("v3"), full=False)

    await until(lambda: bool(releases.seen))
    await asyncio.sleep(0.1)

    assert [(version, full) for version, full, _ in releases.seen] == [("v3", True)]
    await debouncer.stop()


async def test_endpoint_only_bursts_stay_endpoint_only() -> None:
    releases = Releases()
    debouncer = PushDebouncer(releases, quiet=0.0, max_delay=0.0)
    debouncer.trigger(mesh("v1"), full=False)
    await until(lambda: bool(releases.seen))
    assert [(version, full) for version, full, _ in releases.seen] == [("v1", False)]
    await debouncer.stop()


async def test_a_steady_trickle_is_released_within_the_max_delay() -> None:
    releases = Releases()
    debouncer = PushDebouncer(releases, quiet=0.1, max_delay=0.15)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for index in range(30):  # a change every 20 ms: never 100 ms of quiet
        debouncer.trigger(mesh(f"v{index}"), full=True)
        await asyncio.sleep(0.02)
    stopped_triggering = loop.time()

    assert releases.seen, "nothing was released during a 0.6 s trickle"
    assert releases.seen[0][2] < stopped_triggering
    assert releases.seen[0][2] - started >= 0.15
    await debouncer.stop()


async def test_stop_drops_a_waiting_burst() -> None:
    releases = Releases()
    debouncer = PushDebouncer(releases, quiet=0.05, max_delay=1.0)
    debouncer.trigger(mesh("v1"), full=True)
    await debouncer.stop()
    debouncer.trigger(mesh("v2"), full=True)
    await asyncio.sleep(0.15)
    assert releases.seen == []


# --- generation cache -----------------------------------------------------------------------


def seen(config: PackedConfig, type_url: str) -> Mapping[str, PackedResource]:
    """What a wildcard watch (CDS, LDS) or a watch of every name (EDS, RDS) is sent."""
    names = None if type_url in (CLUSTER_TYPE, LISTENER_TYPE) else config.config.of_type(type_url)
    return config.select(type_url, names).resources


async def test_proxies_of_one_scope_share_the_generated_and_packed_config(
    reader: InMemoryMetricReader,
) -> None:
    translation = CountingTranslation()
    cache = GenerationCache(translation=translation, concurrency=2, metrics=metrics(reader))
    snapshot = mesh("v1")
    cache.reset(snapshot)

    first = await cache.get(snapshot, sidecar("catalog-1", inbound_port=18081))
    second = await cache.get(snapshot, sidecar("catalog-2", inbound_port=18091))

    assert translation.shared_calls == ["shop"]
    assert len(translation.proxy_calls) == 2
    shared = seen(first, CLUSTER_TYPE)[CATALOG]
    assert seen(second, CLUSTER_TYPE)[CATALOG] is shared  # packed once
    assert "inbound|18081||catalog.shop.svc.cluster.local" in seen(first, CLUSTER_TYPE)
    assert "inbound|18091||catalog.shop.svc.cluster.local" in seen(second, CLUSTER_TYPE)
    assert seen(first, ENDPOINT_TYPE) is seen(second, ENDPOINT_TYPE)  # one selection for both
    assert counter(reader, "pilot.xds.generations", result="shared") == 1

    # Same namespace and ports as the first: the whole config is shared.
    assert await cache.get(snapshot, sidecar("catalog-3", inbound_port=18081)) is first
    assert len(translation.proxy_calls) == 2
    assert counter(reader, "pilot.xds.generations", result="hit") == 1

    # Another namespace seeing the same services under the same rules: its own routes
    # (short names differ), the same clusters and endpoints.
    web = await cache.get(snapshot, sidecar("web-1", namespace="web"))
    assert translation.shared_calls == ["shop", "web"]
    assert translation.cluster_calls == ["shop"]
    assert seen(web, CLUSTER_TYPE)[CATALOG] is shared
    assert web.config == xds_generate.generate(snapshot, sidecar("web-1", namespace="web"))

    newer = mesh("v2")
    cache.reset(newer)
    assert (await cache.get(newer, sidecar("catalog-1"))).version == "v2"
    assert translation.shared_calls == ["shop", "web", "shop"]


async def test_an_endpoint_update_reuses_the_packed_clusters_and_routes(
    reader: InMemoryMetricReader,
) -> None:
    translation = CountingTranslation()
    cache = GenerationCache(translation=translation, concurrency=2, metrics=metrics(reader))
    before = mesh("v1", ENTRIES + TWO_SERVICES)
    cache.reset(before)
    old = await cache.get(before, sidecar("catalog-1"))
    await cache.get(before, sidecar("web-1", namespace="web"))

    moved = mesh("v2", ENTRIES.replace("127.0.0.1", "127.0.0.2") + TWO_SERVICES)
    assert moved.change_from(before) == "endpoints"
    cache.reset(moved)
    own_generated = len(translation.proxy_calls)
    new = await cache.get(moved, sidecar("catalog-1"))
    web = await cache.get(moved, sidecar("web-1", namespace="web"))

    assert translation.shared_calls == ["shop", "web"]
    assert len(translation.proxy_calls) == own_generated  # listeners, routes: kept as packed
    assert len(translation.refresh_calls) == 1  # one cluster part, shared by both scopes
    assert new.version == "v2"
    assert new.config == xds_generate.generate(moved, sidecar("catalog-1"))
    assert web.config == xds_generate.generate(moved, sidecar("web-1", namespace="web"))
    for type_url in (CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE):
        assert seen(new, type_url).keys() == seen(old, type_url).keys()
    assert seen(new, CLUSTER_TYPE)[CATALOG] is seen(old, CLUSTER_TYPE)[CATALOG]
    assert seen(new, ROUTE_TYPE)["outbound_http"] is seen(old, ROUTE_TYPE)["outbound_http"]
    endpoints, old_endpoints = seen(new, ENDPOINT_TYPE), seen(old, ENDPOINT_TYPE)
    assert endpoints[REVIEWS] is old_endpoints[REVIEWS]  # unchanged: not packed again
    assert endpoints[CATALOG].version != old_endpoints[CATALOG].version

    # A full change after it generates everything again.
    changed = mesh("v3")
    cache.reset(changed)
    await cache.get(changed, sidecar("catalog-1"))
    assert translation.shared_calls == ["shop", "web", "shop"]


async def test_concurrent_lookups_of_one_scope_generate_once(reader: InMemoryMetricReader) -> None:
    translation = CountingTranslation(delay=0.1)
    cache = GenerationCache(translation=translation, concurrency=4, metrics=metrics(reader))
    snapshot = mesh("v1")
    cache.reset(snapshot)

    configs = await asyncio.gather(*(cache.get(snapshot, sidecar(f"c-{i}")) for i in range(5)))

    assert translation.shared_calls == ["shop"]
    assert {c.version for c in configs} == {"v1"}


async def test_generation_concurrency_is_limited(reader: InMemoryMetricReader) -> None:
    translation = CountingTranslation(delay=0.05)
    cache = GenerationCache(translation=translation, concurrency=1, metrics=metrics(reader))
    snapshot = mesh("v1")
    cache.reset(snapshot)

    await asyncio.gather(*(cache.get(snapshot, sidecar("w", namespace=f"ns{i}")) for i in range(4)))

    assert len(translation.shared_calls) == 4
    assert translation.max_in_flight == 1


async def test_a_snapshot_that_is_not_current_is_generated_but_not_cached(
    reader: InMemoryMetricReader,
) -> None:
    translation = CountingTranslation()
    cache = GenerationCache(translation=translation, concurrency=1, metrics=metrics(reader))
    cache.reset(mesh("v2"))
    old = mesh("v1")

    await cache.get(old, sidecar("a"))
    await cache.get(old, sidecar("b"))

    assert translation.shared_calls == ["shop", "shop"]
    assert cache.size() == 0


# --- failed generation ----------------------------------------------------------------------


@pytest.fixture
async def failing_server() -> AsyncIterator[tuple[DiscoveryServer, CountingTranslation]]:
    translation = CountingTranslation(fail_version="bad")
    server = DiscoveryServer(translation=translation, debounce_quiet=0, debounce_max=0)
    yield server, translation
    await server.stop()


async def released(server: DiscoveryServer, snapshot: MeshSnapshot) -> None:
    server.update(snapshot, full=True)
    await until(lambda: server.snapshot is snapshot)


async def test_a_failed_generation_keeps_the_last_config_and_the_stream(
    failing_server: tuple[DiscoveryServer, CountingTranslation],
) -> None:
    server, _ = failing_server
    await released(server, mesh("good"))
    node = base_pb2.Node(id="sidecar~127.0.0.1~web-1.shop~shop.svc.cluster.local")
    connection = server.connect(node, peer="test", kind=SotwConnection)
    connection.handle(discovery_pb2.DiscoveryRequest(type_url=CLUSTER_TYPE))
    first: Any = await asyncio.wait_for(connection.next_response(), 5)
    connection.handle(
        discovery_pb2.DiscoveryRequest(type_url=CLUSTER_TYPE, response_nonce=first.nonce)
    )

    await released(server, mesh("bad"))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(connection.next_response(), 0.3)

    status = connection.status()
    assert status.generation_error is not None
    assert "translation bug at bad" in status.generation_error
    assert status.watches["cds"].acked_version == "good"

    await released(server, mesh("fixed"))
    recovered: Any = await asyncio.wait_for(connection.next_response(), 5)
    assert recovered.version_info == "fixed"
    assert connection.status().generation_error is None
