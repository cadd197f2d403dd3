"""Pilot as a real process between a real Galley and Envoy-like ADS clients over gRPC.

Each test starts ``python -m services.galley`` on its own config directory and
``python -m services.pilot`` following it (the ``mesh`` fixture), then connects
:class:`bench.ads_client.SimulatedProxy` streams (``ads_client``), state of the world and
delta. Config changes are file edits; assertions are about what the clients hold and
receive, and what Pilot's ``/debug/syncz``, ``/debug/config_dump`` and ``/metrics`` show.
One test runs real Envoy (both protocols) against the same processes.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.route.v3 import route_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import any_pb2

from bench.ads_client import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    SimulatedProxy,
)

if TYPE_CHECKING:
    from tests.integration.pilot.conftest import StartClient, StartMesh

ORDER = [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE]
WAIT_S = 15.0
METADATA = {"SPLITMESH_OUTBOUND_PORT": 15001}
REVIEWS_CLUSTER = "outbound|8080||reviews.shop.svc.cluster.local"


def sidecar_id(workload: str, namespace: str = "shop") -> str:
    return f"sidecar~127.0.0.1~{workload}.{namespace}~{namespace}.svc.cluster.local"


def service_entry(name: str, port: int) -> str:
    return (
        "apiVersion: networking.istio.io/v1alpha3\n"
        "kind: ServiceEntry\n"
        f"metadata: {{name: {name}, namespace: shop}}\n"
        "spec:\n"
        f"  hosts: [{name}.shop.svc.cluster.local]\n"
        "  location: MESH_INTERNAL\n"
        "  resolution: STATIC\n"
        "  ports: [{number: 8080, name: http, protocol: HTTP}]\n"
        f"  endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}}}]\n"
    )


FILES = {
    "catalog.yaml": service_entry("catalog", 18081),
    "ratings.yaml": service_entry("ratings", 18084),
}


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition()`` (a blocking call is fine) until it is true, up to ``WAIT_S``."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"{what}: not reached in {WAIT_S} s"
        await asyncio.sleep(0.05)


async def synced(client: SimulatedProxy, version: str) -> None:
    await client.wait_for(lambda p: all(p.versions.get(t) == version for t in ORDER), WAIT_S)


def arrivals(client: SimulatedProxy, version: str) -> list[str]:
    return [r.type_url for r in client.history if r.version == version]


def holds_reviews(client: SimulatedProxy) -> bool:
    """Whether the client holds the reviews cluster, its endpoints and its virtual host."""
    return all(REVIEWS_CLUSTER in client.resources.get(t, {}) for t in ORDER[:2]) and (
        "reviews.shop.svc.cluster.local:8080" in held_routes(client)
    )


def held_routes(client: SimulatedProxy) -> list[str]:
    """The virtual host names of the client's ``outbound_http`` route configuration."""
    routes = client.resource(ROUTE_TYPE, "outbound_http", route_pb2.RouteConfiguration())
    return sorted(host.name for host in routes.virtual_hosts)


async def test_sotw_and_delta_clients_follow_a_file_change_in_push_order(
    mesh: StartMesh, ads_client: StartClient
) -> None:
    running = await mesh(FILES)
    sotw = await ads_client(running.pilot, sidecar_id("storefront-1"), metadata=METADATA)
    delta = await ads_client(
        running.pilot, sidecar_id("storefront-2"), metadata=METADATA, delta=True
    )
    first = running.pilot_version()
    await synced(sotw, first)
    await synced(delta, first)

    running.write("reviews.yaml", service_entry("reviews", 18085))

    await eventually(lambda: running.pilot_version() != first, "a new version")
    second = running.pilot_version()
    for client in (sotw, delta):
        await client.wait_for(holds_reviews, WAIT_S)
    # A full push goes out CDS, EDS, LDS, RDS (then EDS again: the client subscribes to
    # the new cluster's endpoints, as Envoy does).
    assert list(dict.fromkeys(arrivals(sotw, second))) == ORDER
    # Delta sends only what changed, clusters first: the new cluster, the new virtual host,
    # then the endpoints the client subscribes to; the unchanged listeners are not resent.
    delta_order = arrivals(delta, second)
    assert delta_order[0] == CLUSTER_TYPE
    assert sorted(delta_order) == sorted([CLUSTER_TYPE, ENDPOINT_TYPE, ROUTE_TYPE])
    await eventually(
        lambda: running.syncz(sotw.node_id)["in_sync"] and running.syncz(delta.node_id)["in_sync"],
        "both proxies in sync",
    )
    rds = running.syncz(delta.node_id)["types"]["rds"]
    assert rds["acked_version"] == rds["sent_version"] == second
    dump = running.pilot.get(f"/debug/config_dump?proxy={sotw.node_id}").json()
    assert REVIEWS_CLUSTER in {cluster["name"] for cluster in dump["clusters"]}


async def test_a_nack_is_reported_with_envoys_text_and_the_last_good_config_kept(
    mesh: StartMesh, ads_client: StartClient
) -> None:
    running = await mesh(FILES)
    message = "route config rejected: reviews is not allowed here"

    def reject(type_url: str, resources: Sequence[any_pb2.Any]) -> str | None:
        for packed in resources:
            routes = route_pb2.RouteConfiguration()
            if packed.Unpack(routes) and any("reviews" in h.name for h in routes.virtual_hosts):
                return message
        return None

    client = await ads_client(
        running.pilot, sidecar_id("storefront-1"), metadata=METADATA, reject=reject
    )
    good = running.pilot_version()
    await synced(client, good)

    running.write("reviews.yaml", service_entry("reviews", 18085))
    await client.wait_for(lambda p: p.versions[CLUSTER_TYPE] != good, WAIT_S)
    bad = client.versions[CLUSTER_TYPE]

    await eventually(
        lambda: running.syncz(client.node_id)["types"]["rds"]["nacks"] == 1, "the NACK recorded"
    )
    rds = running.syncz(client.node_id)["types"]["rds"]
    assert (rds["acked_version"], rds["sent_version"]) == (good, bad)
    assert rds["last_nack"] == {"version": bad, "nonce": rds["sent_nonce"], "message": message}
    assert not running.syncz(client.node_id)["in_sync"]
    assert running.pilot.metric("pilot_xds_nacks_total", type="rds") == 1
    assert "reviews.shop.svc.cluster.local:8080" not in held_routes(client)
    assert client.versions[ROUTE_TYPE] == good

    # An endpoint change is pushed (EDS only); the rejected routes are not sent again.
    running.write("catalog.yaml", service_entry("catalog", 18091))
    await client.wait_for(lambda p: p.versions[ENDPOINT_TYPE] not in (good, bad), WAIT_S)
    assert running.syncz(client.node_id)["types"]["rds"]["sent_version"] == bad
    assert running.pilot.metric("pilot_xds_nacks_total", type="rds") == 1
    assignment = client.resource(
        ENDPOINT_TYPE,
        "outbound|8080||catalog.shop.svc.cluster.local",
        endpoint_pb2.ClusterLoadAssignment(),
    )
    ports = [
        e.endpoint.address.socket_address.port_value for e in assignment.endpoints[0].lb_endpoints
    ]
    assert ports == [18091]


async def test_bad_streams_get_an_error_and_other_streams_keep_working(
    mesh: StartMesh, ads_client: StartClient
) -> None:
    running = await mesh(FILES)
    healthy = await ads_client(running.pilot, sidecar_id("storefront-1"), metadata=METADATA)
    await synced(healthy, running.pilot_version())

    async with grpc.aio.insecure_channel(running.pilot.address("grpc")) as channel:
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
        await call.write(
            discovery_pb2.DiscoveryRequest(
                node=base_pb2.Node(id=sidecar_id("odd-1")),
                type_url="type.googleapis.com/envoy.config.secret.v3.Secret",
            )
        )
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await call.read()
    assert unknown.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "envoy.config.secret.v3.Secret" in (unknown.value.details() or "")

    for delta in (False, True):
        garbage = await ads_client(running.pilot, "garbage", delta=delta, reconnect=False)
        await garbage.wait_for(lambda p: bool(p.errors), WAIT_S)
        code, details = garbage.errors[0]
        assert code == "INVALID_ARGUMENT"
        assert "node id 'garbage' is not of the form" in details

    running.write("reviews.yaml", service_entry("reviews", 18085))
    await healthy.wait_for(lambda p: REVIEWS_CLUSTER in p.resources[CLUSTER_TYPE], WAIT_S)
    assert healthy.errors == []
    assert [p["proxy"] for p in running.pilot.debug("adsz")["connections"]] == [healthy.node_id]


async def test_pilot_keeps_serving_its_last_config_when_galley_stops(
    mesh: StartMesh, ads_client: StartClient
) -> None:
    running = await mesh(FILES)
    existing = await ads_client(running.pilot, sidecar_id("storefront-1"), metadata=METADATA)
    version = running.pilot_version()
    await synced(existing, version)

    assert running.galley.stop() == 0

    newcomer = await ads_client(
        running.pilot, sidecar_id("storefront-2"), metadata=METADATA, delta=True
    )
    await synced(newcomer, version)
    assert sorted(newcomer.resources[CLUSTER_TYPE]) == sorted(existing.resources[CLUSTER_TYPE])
    assert existing.errors == []
    assert running.pilot.get("/ready").status_code == 200
    configz = running.pilot.debug("configz")
    assert configz["version"] == version
    assert configz["galley_error"] is not None


async def test_clients_reconnect_and_resync_after_pilot_restarts(
    mesh: StartMesh, ads_client: StartClient
) -> None:
    running = await mesh(FILES)
    clients = [
        await ads_client(running.pilot, sidecar_id(f"storefront-{i}"), metadata=METADATA, delta=d)
        for i, d in enumerate((False, True))
    ]
    version = running.pilot_version()
    for client in clients:
        await synced(client, version)

    assert running.pilot.stop() == 0
    running.pilot.start(reuse_ports=True)
    await running.pilot.wait_ok("/ready")

    for client in clients:
        await client.wait_for(lambda p: p.streams == 2, WAIT_S)
    await eventually(lambda: all(running.syncz(c.node_id)["in_sync"] for c in clients), "resynced")
    assert running.pilot_version() == version  # equal config, equal version
    running.write("reviews.yaml", service_entry("reviews", 18085))
    for client in clients:
        await client.wait_for(lambda p: REVIEWS_CLUSTER in p.resources[CLUSTER_TYPE], WAIT_S)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bootstrap(node_id: str, pilot_port: int, *, delta: bool) -> dict[str, Any]:
    ads = {"ads": {}, "resource_api_version": "V3"}
    return {
        "node": {
            "id": node_id,
            "cluster": "storefront",
            "metadata": {"SPLITMESH_OUTBOUND_PORT": _free_port()},
        },
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "DELTA_GRPC" if delta else "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds"}}],
            },
            "cds_config": ads,
            "lds_config": ads,
        },
        "static_resources": {
            "clusters": [
                {
                    "name": "xds",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "typed_extension_protocol_options": {
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                            "@type": "type.googleapis.com/"
                            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                            "explicit_http_config": {"http2_protocol_options": {}},
                        }
                    },
                    "load_assignment": {
                        "cluster_name": "xds",
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": {
                                                "socket_address": {
                                                    "address": "127.0.0.1",
                                                    "port_value": pilot_port,
                                                }
                                            }
                                        }
                                    }
                                ]
                            }
                        ],
                    },
                }
            ]
        },
    }


async def test_real_envoy_takes_its_config_over_sotw_and_delta(
    mesh: StartMesh, tmp_path: Path
) -> None:
    envoy = Path(sys.executable).parent / "envoy"
    running = await mesh(FILES)
    version = running.pilot_version()
    processes = []
    try:
        for index, delta in enumerate((False, True)):
            bootstrap = tmp_path / f"envoy-{index}.json"
            node_id = sidecar_id(f"envoy-{index}")
            bootstrap.write_text(
                json.dumps(_bootstrap(node_id, running.pilot.ports["grpc"], delta=delta))
            )
            with (tmp_path / f"envoy-{index}.log").open("w") as log:
                processes.append(
                    await asyncio.create_subprocess_exec(
                        *(str(envoy), "-c", str(bootstrap), "--disable-hot-restart"),
                        *("--log-level", "warn", "--base-id", str(index + 1)),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        for index, protocol in enumerate(("sotw", "delta")):
            node_id = sidecar_id(f"envoy-{index}")

            def in_sync(node_id: str = node_id) -> bool:
                found = [
                    p for p in running.pilot.debug("syncz")["proxies"] if p["proxy"] == node_id
                ]
                return bool(found) and found[0]["in_sync"] and len(found[0]["types"]) == 4

            await eventually(in_sync, f"Envoy {protocol} in sync")
            entry = running.syncz(node_id)
            assert entry["protocol"] == protocol
            assert {t["acked_version"] for t in entry["types"].values()} == {version}
    finally:
        for process in processes:
            process.terminate()
            await process.wait()
