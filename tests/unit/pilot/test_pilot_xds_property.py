"""Property: any config Galley accepts translates without an internal error, deterministically.

Hypothesis mutates the examples/ mesh (routes, matches, weights, faults, retries,
DestinationRule policies, ServiceEntry resolution and endpoints, Sidecar egress, gateway
bindings); Galley's own validation decides which objects are accepted, and only those reach
Pilot, as in production.
"""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import yaml
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import MeterProvider

from services.galley.core.validation import accept
from services.pilot.core.ads.cache import GenerationCache
from services.pilot.core.ads.connection import WILDCARD_TYPES
from services.pilot.core.ads.metrics import AdsMetrics
from services.pilot.core.model import (
    MESSAGE_TYPES,
    TYPE_URLS,
    Proxy,
    node_id,
    parse_proxy,
)
from services.pilot.core.registry import services_from_service_entries
from services.pilot.core.snapshot import MeshSnapshot
from services.pilot.core.xds import generate as xds_generate
from services.pilot.core.xds.generate import (
    SharedCache,
    generate,
    generate_shared,
    refresh_endpoints,
)
from services.pilot.core.xds.problems import Problem
from shared.config import Resource, parse_object

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "mesh"
HOSTS = ["catalog", "ratings", "storefront.shop.svc.cluster.local", "api.example.com"]
SUBSETS = [None, "v1", "v2", "v3", "v9"]
DURATIONS = ["1ms", "250ms", "1s", "1.5s", "1m"]
MATCHES = st.sampled_from(["exact", "prefix", "regex"])
PROXIES: list[Proxy] = [
    parse_proxy(
        node_id("sidecar", "127.0.0.1", "catalog-v1", "shop"),
        {
            "LABELS": {"app": "catalog", "version": "v1"},
            "SPLITMESH_OUTBOUND_PORT": 15001,
            "SPLITMESH_INBOUND": [
                {"port": 18081, "app_port": 28081, "service": "catalog.shop.svc.cluster.local"}
            ],
        },
    ),
    parse_proxy(
        node_id("sidecar", "127.0.0.1", "client", "other"),
        {"LABELS": {"app": "client"}, "SPLITMESH_OUTBOUND_PORT": 15002},
    ),
    parse_proxy(
        node_id("router", "127.0.0.1", "ingressgateway", "istio-system"),
        {"LABELS": {"istio": "ingressgateway"}},
    ),
]


def _documents() -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        documents.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return documents


BASE = _documents()


def _string_match(data: st.DataObject) -> dict[str, str]:
    kind = data.draw(MATCHES)
    text = data.draw(st.sampled_from(["/", "/api", "tester", "", "a.*b", "/v[0-9]+"]))
    return {kind: text}


def _destination(data: st.DataObject) -> dict[str, Any]:
    destination: dict[str, Any] = {"host": data.draw(st.sampled_from(HOSTS))}
    subset = data.draw(st.sampled_from(SUBSETS))
    if subset:
        destination["subset"] = subset
    if data.draw(st.booleans()):
        destination["port"] = {"number": data.draw(st.sampled_from([80, 8080, 9999]))}
    return destination


def _http_route(data: st.DataObject) -> dict[str, Any]:
    route: dict[str, Any] = {}
    if data.draw(st.booleans()):
        match: dict[str, Any] = {"uri": _string_match(data)}
        if data.draw(st.booleans()):
            match["headers"] = {"x-user": _string_match(data)}
        for field in data.draw(st.sets(st.sampled_from(["method", "authority", "port", "gw"]))):
            match.update(
                {
                    "method": {"method": {"exact": "GET"}},
                    "authority": {"authority": _string_match(data)},
                    "port": {"port": 8080},
                    "gw": {"gateways": [data.draw(st.sampled_from(["mesh", "shop-gateway"]))]},
                }[field]
            )
        route["match"] = [match]
    if data.draw(st.integers(0, 5)) == 0:
        route["redirect"] = {
            "uri": "/moved",
            "redirectCode": data.draw(st.sampled_from([301, 307])),
        }
    else:
        count = data.draw(st.integers(1, 3))
        first = data.draw(st.integers(0, 100)) if count > 1 else 100
        weights = [first, 100 - first] + [0] * (count - 2)
        route["route"] = [
            {"destination": _destination(data), "weight": weights[i]} for i in range(count)
        ]
        extras = data.draw(st.sets(st.sampled_from(["timeout", "retries", "fault", "mirror"])))
        if "timeout" in extras:
            route["timeout"] = data.draw(st.sampled_from(DURATIONS))
        if "retries" in extras:
            route["retries"] = {
                "attempts": data.draw(st.integers(0, 4)),
                "retryOn": data.draw(st.sampled_from(["5xx", "reset,503", "gateway-error"])),
                "perTryTimeout": data.draw(st.sampled_from(DURATIONS)),
            }
        if "fault" in extras:
            percent = {"value": data.draw(st.floats(0, 100))}
            route["fault"] = {
                "abort": {"httpStatus": data.draw(st.integers(200, 599)), "percentage": percent},
                "delay": {"fixedDelay": data.draw(st.sampled_from(DURATIONS))},
            }
        if "mirror" in extras:
            route["mirror"] = _destination(data)
            route["mirrorPercent"] = data.draw(st.integers(0, 100))
    if data.draw(st.booleans()):
        route["headers"] = {"request": {"set": {"x-a": "1"}}, "response": {"remove": ["x-b"]}}
    if data.draw(st.booleans()):
        route["corsPolicy"] = {"allowOrigins": [{"exact": "https://a.example"}], "maxAge": "1m"}
    return route


def _policy(data: st.DataObject) -> dict[str, Any]:
    policy: dict[str, Any] = {}
    balancer = data.draw(
        st.sampled_from(["ROUND_ROBIN", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "hash"])
    )
    policy["loadBalancer"] = (
        {"consistentHash": {"httpCookie": {"name": "s", "ttl": "10s"}}}
        if balancer == "hash"
        else {"simple": balancer}
    )
    if data.draw(st.booleans()):
        policy["connectionPool"] = {
            "tcp": {"maxConnections": data.draw(st.integers(1, 100)), "connectTimeout": "1s"},
            "http": {"http2MaxRequests": data.draw(st.integers(1, 100)), "idleTimeout": "5s"},
        }
    if data.draw(st.booleans()):
        policy["outlierDetection"] = {
            "consecutiveGatewayErrors": data.draw(st.integers(0, 10)),
            "maxEjectionPercent": data.draw(st.integers(0, 100)),
        }
    return policy


def _mutate(document: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    document = copy.deepcopy(document)
    spec, kind = document["spec"], document["kind"]
    if kind == "VirtualService":
        spec["http"] = [_http_route(data) for _ in range(data.draw(st.integers(1, 3)))]
        if data.draw(st.booleans()):
            spec["hosts"] = data.draw(st.lists(st.sampled_from(HOSTS), min_size=1, unique=True))
    elif kind == "DestinationRule":
        spec["trafficPolicy"] = _policy(data)
        if data.draw(st.booleans()):
            spec["subsets"][0]["trafficPolicy"] = _policy(data)
        if data.draw(st.booleans()):
            spec["host"] = data.draw(st.sampled_from(["*.shop.svc.cluster.local", "ratings"]))
    elif kind == "ServiceEntry":
        resolution = data.draw(st.sampled_from(["STATIC", "DNS", "NONE"]))
        spec["resolution"] = resolution
        if resolution == "NONE":
            spec.pop("endpoints", None)
        if data.draw(st.booleans()):
            spec["ports"].append({"number": 9090, "name": "grpc", "protocol": "GRPC"})
        if data.draw(st.booleans()):
            spec["exportTo"] = ["."]
    elif kind == "Gateway":
        spec["servers"][0]["hosts"] = [
            data.draw(st.sampled_from(["*", "shop.example.com", "shop/*"]))
        ]
    return document


def _sidecar(data: st.DataObject) -> dict[str, Any]:
    hosts = data.draw(
        st.lists(
            st.sampled_from(["./*", "*/*", "shop/*", "~/*", "*/ratings.shop.svc.cluster.local"]),
            min_size=1,
            unique=True,
        )
    )
    return {
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "Sidecar",
        "metadata": {"name": "default", "namespace": data.draw(st.sampled_from(["shop", "other"]))},
        "spec": {"egress": [{"hosts": hosts}]},
    }


def _moved_endpoints(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with its first ServiceEntry endpoint (if any) at another address."""
    moved = copy.deepcopy(document)
    endpoints = moved.get("spec", {}).get("endpoints") if moved["kind"] == "ServiceEntry" else None
    if endpoints:
        endpoints[0]["address"] = "10.99.0.1"
    return moved


def _accepted(documents: list[dict[str, Any]]) -> list[Resource]:
    parsed = []
    for document in documents:
        resource, _ = parse_object(document, "property.yaml")
        if resource is not None:
            parsed.append(resource)
    accepted, _ = accept(parsed)
    return accepted


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(st.data())
def test_any_accepted_config_translates_without_internal_errors(data: st.DataObject) -> None:
    snapshot, moved = _meshes(data)
    problems: list[Problem] = []
    cache = SharedCache()
    for proxy in PROXIES:
        config = generate(snapshot, proxy, report=problems.append)
        assert cache.generate(snapshot, proxy) == config
        if moved.change_from(snapshot) == "endpoints":
            refreshed = refresh_endpoints(moved, proxy, cache.shared(snapshot, proxy))
            assert generate(moved, proxy, shared=refreshed) == generate(moved, proxy)
        for resources_of_type in config.resources.values():
            for name, message in resources_of_type.items():
                assert message.SerializeToString(deterministic=True)
                assert name in (getattr(message, "name", ""), getattr(message, "cluster_name", ""))
        shared = generate_shared(snapshot, proxy)
        assert not shared.problems or all(not p.internal for p in shared.problems)
    assert [p for p in problems if p.internal] == []


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(st.data())
def test_the_generation_cache_serves_every_watch_what_generate_makes(
    data: st.DataObject,
) -> None:
    """Layers, shared selections and encoded responses change nothing a proxy receives,
    also after the endpoints move (the refresh path) or the config changes."""
    snapshot, moved = _meshes(data)
    asyncio.run(_served_as_generated([snapshot, moved]))


async def _served_as_generated(snapshots: list[MeshSnapshot]) -> None:
    cache = GenerationCache(
        translation=xds_generate,
        concurrency=2,
        metrics=AdsMetrics(MeterProvider().get_meter("property")),
    )
    for snapshot in snapshots:
        cache.reset(snapshot)
        for proxy in PROXIES:
            packed = await cache.get(snapshot, proxy)
            expected = generate(snapshot, proxy)
            for type_url in TYPE_URLS:
                wanted = expected.of_type(type_url)
                names = None if type_url in WILDCARD_TYPES else list(wanted)
                selection = packed.select(type_url, names)
                assert selection.resources.keys() == wanted.keys()
                response = selection.sotw_response("n").decode()
                assert isinstance(response, discovery_pb2.DiscoveryResponse)
                sent = {
                    _resource_name(any_message): any_message for any_message in response.resources
                }
                assert sent.keys() == wanted.keys()
                for name, message in wanted.items():
                    assert sent[name].value == message.SerializeToString(deterministic=True)


def _resource_name(packed: any_pb2.Any) -> str:
    message = MESSAGE_TYPES[packed.type_url]()
    packed.Unpack(message)
    return str(getattr(message, "name", "") or getattr(message, "cluster_name", ""))


def _meshes(data: st.DataObject) -> tuple[MeshSnapshot, MeshSnapshot]:
    """A drawn variant of the examples mesh, and the same with one endpoint moved."""
    documents = [
        _mutate(document, data) if data.draw(st.booleans()) else document
        for document in BASE
        if data.draw(st.integers(0, 9)) > 0
    ]
    if data.draw(st.booleans()):
        documents.append(_sidecar(data))
    resources = _accepted(documents)
    snapshot = MeshSnapshot.build(resources, services_from_service_entries(resources), version="p")
    moved_resources = _accepted([_moved_endpoints(document) for document in documents])
    moved = MeshSnapshot.build(
        moved_resources, services_from_service_entries(moved_resources), version="q"
    )
    return snapshot, moved
