"""The ADS protocol logic without gRPC: config store → discovery server → connections.

Config goes in as MCP collection snapshots (what Galley sends), through the real config
store and the real xDS translation; requests go straight into connections and responses
come out of ``next_response()``, as the gRPC adapter drives them.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.rpc import status_pb2
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from services.pilot.core.ads.connection import Connection
from services.pilot.core.ads.delta import DeltaConnection
from services.pilot.core.ads.errors import BadNodeError, UnknownTypeError
from services.pilot.core.ads.server import DiscoveryServer
from services.pilot.core.ads.sotw import SotwConnection
from services.pilot.core.config_store import ConfigRejectedError, ConfigStore, pilot_collections
from services.pilot.core.model import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    MESSAGE_TYPES,
    META_INBOUND,
    META_OUTBOUND_PORT,
    ROUTE_TYPE,
)
from services.pilot.core.xds import generate as xds_generate
from shared.config import parse_yaml
from shared.contracts.mcp.snapshot import CollectionSnapshot, McpResource

NODE_ID = "sidecar~127.0.0.1~storefront-1.shop~shop.svc.cluster.local"
CATALOG = "outbound|8080||catalog.shop.svc.cluster.local"
RATINGS = "outbound|8080||ratings.shop.svc.cluster.local"
REVIEWS = "outbound|8080||reviews.shop.svc.cluster.local"
WAIT_S = 5.0
SUBSCRIPTIONS = {
    CLUSTER_TYPE: [],
    ENDPOINT_TYPE: [CATALOG, RATINGS],
    LISTENER_TYPE: [],
    ROUTE_TYPE: ["outbound_http"],
}


def service_entry(name: str, port: int) -> str:
    return f"""
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {{name: {name}, namespace: shop}}
spec:
  hosts: [{name}.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 8080, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}, labels: {{version: v1}}}}]
"""


def timeout_route(seconds: int) -> str:
    return f"""
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {{name: catalog, namespace: shop}}
spec:
  hosts: [catalog.shop.svc.cluster.local]
  http:
    - route: [{{destination: {{host: catalog.shop.svc.cluster.local}}}}]
      timeout: {seconds}s
"""


def config(*documents: str) -> str:
    return "\n---\n".join(documents)


RANDOM_LB = """
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: catalog, namespace: shop}
spec:
  host: catalog.shop.svc.cluster.local
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
"""
BASE = config(service_entry("catalog", 18081), service_entry("ratings", 18084))


def collections(text: str) -> list[CollectionSnapshot]:
    """What Galley would push for ``text``: every collection Pilot follows."""
    parsed = parse_yaml(text, "test.yaml")
    assert not parsed.issues, parsed.issues
    by_collection: dict[str, dict[str, McpResource]] = {c: {} for c in pilot_collections()}
    for resource in parsed.resources:
        by_collection[resource.collection][resource.metadata.full_name] = McpResource(
            name=resource.metadata.full_name,
            version=resource.content_version(),
            body=resource.body(),
            labels=resource.metadata.labels,
        )
    return [
        CollectionSnapshot(collection=c, version=_digest(r.values()), resources=r)
        for c, r in by_collection.items()
    ]


def _digest(resources: Iterable[McpResource]) -> str:
    text = ",".join(sorted(f"{r.name}={r.version}" for r in resources))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


@dataclass
class Pilot:
    store: ConfigStore
    server: DiscoveryServer
    reader: InMemoryMetricReader

    async def load(self, text: str) -> str:
        """Apply ``text`` as Galley would; wait for the push; the new version."""
        for snapshot in collections(text):
            await self.store.apply(snapshot)
        mesh = self.store.snapshot
        assert mesh is not None
        async with asyncio.timeout(WAIT_S):
            while True:
                if self.server.snapshot is mesh:
                    return mesh.version
                await asyncio.sleep(0.005)

    def connect(self, kind: type[SotwConnection] | type[DeltaConnection]) -> Any:
        return self.server.connect(node(), peer="test", kind=kind)

    def metric(self, name: str, **attributes: str) -> float:
        data = self.reader.get_metrics_data()
        total = 0.0
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != name:
                        continue
                    for point in metric.data.data_points:
                        if attributes.items() <= dict(point.attributes or {}).items():
                            total += float(getattr(point, "value", 0) or getattr(point, "count", 0))
        return total


@pytest.fixture
async def pilot() -> AsyncIterator[Pilot]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    server = DiscoveryServer(
        translation=xds_generate,
        debounce_quiet=0,
        debounce_max=0,
        meter=provider.get_meter("test"),
    )
    yield Pilot(ConfigStore(sink=server), server, reader)
    await server.stop()
    provider.shutdown()


def node(node_id: str = NODE_ID, **metadata: Any) -> base_pb2.Node:
    message = base_pb2.Node(id=node_id)
    message.metadata.update({META_OUTBOUND_PORT: 15001, **metadata})
    return message


def sotw(
    type_url: str,
    names: Sequence[str] = (),
    *,
    nonce: str = "",
    version: str = "",
    error: str | None = None,
) -> discovery_pb2.DiscoveryRequest:
    request = discovery_pb2.DiscoveryRequest(
        type_url=type_url, resource_names=names, response_nonce=nonce, version_info=version
    )
    if error is not None:
        request.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
    return request


def delta(
    type_url: str,
    subscribe: Sequence[str] = (),
    unsubscribe: Sequence[str] = (),
    *,
    nonce: str = "",
    initial: dict[str, str] | None = None,
    error: str | None = None,
) -> discovery_pb2.DeltaDiscoveryRequest:
    request = discovery_pb2.DeltaDiscoveryRequest(
        type_url=type_url,
        resource_names_subscribe=subscribe,
        resource_names_unsubscribe=unsubscribe,
        response_nonce=nonce,
        initial_resource_versions=initial or {},
    )
    if error is not None:
        request.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
    return request


async def respond(connection: Connection[Any]) -> Any:
    """The next response as the client parses it off the wire."""
    return (await asyncio.wait_for(connection.next_response(), WAIT_S)).decode()


async def assert_silent(connection: Connection[Any]) -> None:
    """Nothing to send (a response would be built at once: the config is cached)."""
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(connection.next_response(), 0.2)


def names(response: Any) -> list[str]:
    """The resource names of a SotW or delta response, in order."""
    if isinstance(response, discovery_pb2.DeltaDiscoveryResponse):
        return [resource.name for resource in response.resources]
    found = []
    for packed in response.resources:
        message = MESSAGE_TYPES[response.type_url]()
        packed.Unpack(message)
        found.append(getattr(message, "cluster_name", "") or getattr(message, "name", ""))
    return found


def endpoint_ports(response: Any) -> list[int]:
    """The endpoint ports of an EDS response (SotW or delta)."""
    ports = []
    for item in response.resources:
        packed = item.resource if isinstance(item, discovery_pb2.Resource) else item
        assignment = endpoint_pb2.ClusterLoadAssignment()
        packed.Unpack(assignment)
        for group in assignment.endpoints:
            ports += [e.endpoint.address.socket_address.port_value for e in group.lb_endpoints]
    return ports


async def subscribe_all(connection: SotwConnection) -> dict[str, Any]:
    """Subscribe as Envoy does (CDS, EDS, LDS, RDS), ACKing each; the responses by type."""
    responses = {}
    for type_url, wanted in SUBSCRIPTIONS.items():
        connection.handle(sotw(type_url, wanted))
        response = await respond(connection)
        connection.handle(
            sotw(type_url, wanted, nonce=response.nonce, version=response.version_info)
        )
        responses[type_url] = response
    return responses


# --- state of the world -------------------------------------------------------------------


async def test_sotw_answers_each_subscription_with_what_it_names(pilot: Pilot) -> None:
    version = await pilot.load(BASE)
    connection = pilot.connect(SotwConnection)

    responses = await subscribe_all(connection)

    assert {r.version_info for r in responses.values()} == {version}
    assert {CATALOG, RATINGS} <= set(names(responses[CLUSTER_TYPE]))
    assert names(responses[ENDPOINT_TYPE]) == [CATALOG, RATINGS]
    assert endpoint_ports(responses[ENDPOINT_TYPE]) == [18081, 18084]
    assert "outbound_http" in names(responses[LISTENER_TYPE])
    assert names(responses[ROUTE_TYPE]) == ["outbound_http"]
    assert len({r.nonce for r in responses.values()}) == 4
    status = connection.status()
    assert status.in_sync
    assert {w.acked_version for w in status.watches.values()} == {version}


async def test_sotw_proxy_with_an_inbound_port_gets_the_shared_and_its_own_resources(
    pilot: Pilot,
) -> None:
    version = await pilot.load(BASE)
    inbound = {"port": 18081, "app_port": 28081, "service": "catalog.shop.svc.cluster.local"}
    own_node = node("sidecar~127.0.0.1~catalog-1.shop~shop.svc.cluster.local")
    own_node.metadata.update({META_INBOUND: [inbound]})
    connection = pilot.server.connect(own_node, peer="test", kind=SotwConnection)

    responses = await subscribe_all(connection)

    clusters = names(responses[CLUSTER_TYPE])
    assert {CATALOG, RATINGS, "inbound|18081||catalog.shop.svc.cluster.local"} <= set(clusters)
    assert len(set(clusters)) == len(clusters)
    assert responses[CLUSTER_TYPE].version_info == version
    assert {"outbound_http", "inbound|18081"} <= set(names(responses[LISTENER_TYPE]))
    assert connection.status().in_sync


async def test_sotw_names_change_gets_a_response_and_unknown_names_get_empty_ones(
    pilot: Pilot,
) -> None:
    await pilot.load(BASE)
    connection = pilot.connect(SotwConnection)
    connection.handle(sotw(ENDPOINT_TYPE, [CATALOG]))
    first = await respond(connection)
    assert names(first) == [CATALOG]

    # Envoy adds a cluster: it repeats the current nonce with the new names.
    connection.handle(sotw(ENDPOINT_TYPE, [CATALOG, "outbound|1||gone"], nonce=first.nonce))
    second = await respond(connection)

    assert names(second) == ["outbound|1||gone", CATALOG]
    assert endpoint_ports(second) == [18081]  # the unknown cluster gets an empty assignment
    assert connection.status().watches["eds"].acked_version == first.version_info


async def test_sotw_ack_of_the_same_names_sends_nothing(pilot: Pilot) -> None:
    await pilot.load(BASE)
    connection = pilot.connect(SotwConnection)
    await subscribe_all(connection)
    await assert_silent(connection)


async def test_no_response_before_pilot_has_synced(pilot: Pilot) -> None:
    connection = pilot.connect(SotwConnection)
    connection.handle(sotw(CLUSTER_TYPE))
    await assert_silent(connection)

    version = await pilot.load(BASE)

    assert (await respond(connection)).version_info == version


async def test_full_push_sends_every_watched_type_in_cds_eds_lds_rds_order(pilot: Pilot) -> None:
    await pilot.load(BASE)
    connection = pilot.connect(SotwConnection)
    await subscribe_all(connection)

    version = await pilot.load(config(BASE, timeout_route(3)))

    pushed = [await respond(connection) for _ in range(4)]
    assert [r.type_url for r in pushed] == [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE]
    assert {r.version_info for r in pushed} == {version}
    assert names(pushed[1]) == []  # no cluster and no endpoint changed: no assignment


async def test_sotw_eds_after_a_cluster_change_carries_that_clusters_assignment(
    pilot: Pilot,
) -> None:
    await pilot.load(BASE)
    connection = pilot.connect(SotwConnection)
    await subscribe_all(connection)

    await pilot.load(config(BASE, RANDOM_LB))  # changes the catalog cluster only

    clusters, endpoints = await respond(connection), await respond(connection)
    assert (clusters.type_url, endpoints.type_url) == (CLUSTER_TYPE, ENDPOINT_TYPE)
    assert names(endpoints) == [CATALOG]  # Envoy re-warms catalog: it needs the assignment
    assert endpoint_ports(endpoints) == [18081]
    assert pilot.metric("pilot.xds.pushes", type="rds", protocol="sotw") == 2


async def test_endpoint_change_pushes_only_eds_with_only_the_changed_assignments(
    pilot: Pilot,
) -> None:
    await pilot.load(BASE)
    connection = pilot.connect(SotwConnection)
    await subscribe_all(connection)

    version = await pilot.load(
        config(service_entry("catalog", 18091), service_entry("ratings", 18084))
    )

    pushed = await respond(connection)
    assert (pushed.type_url, pushed.version_info) == (ENDPOINT_TYPE, version)
    assert endpoint_ports(pushed) == [18091]  # SotW EDS is incremental: ratings is unchanged
    connection.handle(sotw(ENDPOINT_TYPE, [CATALOG, RATINGS], nonce=pushed.nonce))
    await assert_silent(connection)
    watches = connection.status().watches
    assert watches["eds"].acked_version == version
    assert watches["cds"].acked_version != version


async def test_sotw_nack_is_recorded_and_the_rejected_content_never_resent(pilot: Pilot) -> None:
    good = await pilot.load(BASE)
    connection = pilot.connect(SotwConnection)
    await subscribe_all(connection)
    bad = await pilot.load(config(BASE, timeout_route(3)))
    pushed = {r.type_url: r for r in [await respond(connection) for _ in range(4)]}
    for type_url in (CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE):
        response = pushed[type_url]
        connection.handle(sotw(type_url, SUBSCRIPTIONS[type_url], nonce=response.nonce))

    rejected = pushed[ROUTE_TYPE]
    connection.handle(
        sotw(ROUTE_TYPE, ["outbound_http"], nonce=rejected.nonce, version=good, error="no way")
    )

    rds = connection.status().watches["rds"]
    assert (rds.acked_version, rds.sent_version, rds.nacks) == (good, bad, 1)
    assert rds.last_nack is not None
    assert (rds.last_nack.version, rds.last_nack.message) == (bad, "no way")
    assert not connection.status().in_sync
    assert pilot.metric("pilot.xds.nacks", type="rds") == 1

    # A later push (a load balancer changes) resends every type at the new version but
    # RDS, whose content is the rejected one; once the routes change, RDS is sent again.
    await pilot.load(config(BASE, timeout_route(3), RANDOM_LB))
    again = [await respond(connection) for _ in range(3)]
    assert [r.type_url for r in again] == [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE]
    for response in again:
        connection.handle(
            sotw(response.type_url, SUBSCRIPTIONS[response.type_url], nonce=response.nonce)
        )
    await assert_silent(connection)

    fixed = await pilot.load(config(BASE, timeout_route(4), RANDOM_LB))
    routes = [await respond(connection) for _ in range(4)][-1]
    assert (routes.type_url, routes.version_info) == (ROUTE_TYPE, fixed)


async def test_sotw_stale_nonce_is_ignored(pilot: Pilot) -> None:
    await pilot.load(BASE)
    connection = pilot.connect(SotwConnection)
    connection.handle(sotw(CLUSTER_TYPE))
    old = await respond(connection)
    new_version = await pilot.load(config(BASE, service_entry("reviews", 18085)))
    new = await respond(connection)

    connection.handle(sotw(CLUSTER_TYPE, nonce=old.nonce, error="late rejection of the old"))

    cds = connection.status().watches["cds"]
    assert (cds.nacks, cds.acked_version, cds.sent_version) == (0, None, new_version)
    assert pilot.metric("pilot.xds.stale_nonces", type="cds") == 1
    connection.handle(sotw(CLUSTER_TYPE, nonce=new.nonce))
    assert connection.status().watches["cds"].acked_version == new_version


async def test_convergence_is_recorded_once_the_push_is_answered(pilot: Pilot) -> None:
    await pilot.load(BASE)
    connection = pilot.connect(SotwConnection)
    await subscribe_all(connection)
    await pilot.load(config(service_entry("catalog", 18091), service_entry("ratings", 18084)))
    pushed = await respond(connection)
    assert pilot.metric("pilot.xds.convergence") == 0

    connection.handle(sotw(ENDPOINT_TYPE, [CATALOG, RATINGS], nonce=pushed.nonce))

    assert pilot.metric("pilot.xds.convergence") == 1


# --- delta ----------------------------------------------------------------------------------


async def test_delta_wildcard_sends_what_the_client_lacks_and_removes_what_is_gone(
    pilot: Pilot,
) -> None:
    version = await pilot.load(BASE)
    probe = pilot.connect(DeltaConnection)
    probe.handle(delta(CLUSTER_TYPE))
    everything = await respond(probe)
    current = {r.name: r.version for r in everything.resources}
    pilot.server.disconnect(probe)

    connection = pilot.connect(DeltaConnection)
    connection.handle(
        delta(
            CLUSTER_TYPE,
            initial={**current, CATALOG: "outdated", "outbound|9||old": "1"},
        )
    )
    response = await respond(connection)

    assert response.system_version_info == version
    assert names(response) == [CATALOG]
    assert list(response.removed_resources) == ["outbound|9||old"]


async def test_delta_first_request_is_answered_even_when_nothing_changed(pilot: Pilot) -> None:
    await pilot.load(BASE)
    probe = pilot.connect(DeltaConnection)
    probe.handle(delta(LISTENER_TYPE))
    current = {r.name: r.version for r in (await respond(probe)).resources}

    connection = pilot.connect(DeltaConnection)
    connection.handle(delta(LISTENER_TYPE, initial=current))
    response = await respond(connection)

    assert (list(response.resources), list(response.removed_resources)) == ([], [])


async def test_delta_subscribe_and_unsubscribe_names(pilot: Pilot) -> None:
    await pilot.load(BASE)
    connection = pilot.connect(DeltaConnection)
    connection.handle(delta(ENDPOINT_TYPE, [CATALOG]))
    first = await respond(connection)
    assert names(first) == [CATALOG]

    connection.handle(delta(ENDPOINT_TYPE, [RATINGS], nonce=first.nonce))
    second = await respond(connection)
    assert names(second) == [RATINGS]  # only what is new to the client

    connection.handle(delta(ENDPOINT_TYPE, unsubscribe=[CATALOG], nonce=second.nonce))
    await assert_silent(connection)
    await pilot.load(config(service_entry("catalog", 18091), service_entry("ratings", 18084)))
    await assert_silent(connection)  # the only change is to a name no longer watched
    assert connection.status().watches["eds"].names == {RATINGS}


async def test_delta_star_subscribes_to_everything(pilot: Pilot) -> None:
    await pilot.load(BASE)
    connection = pilot.connect(DeltaConnection)
    connection.handle(delta(CLUSTER_TYPE, [CATALOG]))
    assert names(await respond(connection)) == [CATALOG]

    connection.handle(delta(CLUSTER_TYPE, ["*"]))

    assert RATINGS in names(await respond(connection))
    assert connection.status().watches["cds"].names is None


async def test_delta_push_sends_changes_and_removals(pilot: Pilot) -> None:
    await pilot.load(config(BASE, service_entry("reviews", 18085)))
    connection = pilot.connect(DeltaConnection)
    connection.handle(delta(CLUSTER_TYPE))
    initial = await respond(connection)
    connection.handle(delta(CLUSTER_TYPE, nonce=initial.nonce))

    version = await pilot.load(BASE)

    response = await respond(connection)
    assert (response.system_version_info, list(response.resources)) == (version, [])
    assert list(response.removed_resources) == [REVIEWS]


async def test_delta_nack_keeps_the_rejected_content_from_being_resent(pilot: Pilot) -> None:
    await pilot.load(BASE)
    connection = pilot.connect(DeltaConnection)
    connection.handle(delta(ENDPOINT_TYPE, [CATALOG]))
    first = await respond(connection)
    connection.handle(delta(ENDPOINT_TYPE, nonce=first.nonce))
    bad = await pilot.load(config(service_entry("catalog", 18091), service_entry("ratings", 18084)))
    rejected = await respond(connection)

    connection.handle(delta(ENDPOINT_TYPE, nonce=rejected.nonce, error="port 18091 is cursed"))

    eds = connection.status().watches["eds"]
    assert eds.last_nack is not None
    assert (eds.last_nack.version, eds.last_nack.message) == (bad, "port 18091 is cursed")
    assert eds.acked_version == first.system_version_info
    await pilot.load(config(service_entry("catalog", 18091), service_entry("ratings", 18094)))
    await assert_silent(connection)  # ratings changed, catalog did not: nothing to resend
    await pilot.load(config(service_entry("catalog", 18092), service_entry("ratings", 18094)))
    assert endpoint_ports(await respond(connection)) == [18092]


async def test_delta_unknown_nonce_is_counted_as_stale(pilot: Pilot) -> None:
    await pilot.load(BASE)
    connection = pilot.connect(DeltaConnection)
    connection.handle(delta(CLUSTER_TYPE))
    await respond(connection)

    connection.handle(delta(CLUSTER_TYPE, nonce="no-such-nonce"))

    assert pilot.metric("pilot.xds.stale_nonces", type="cds") == 1
    assert connection.status().watches["cds"].acked_version is None


# --- bad requests and config ------------------------------------------------------------------


async def test_unknown_type_url_is_a_stream_error(pilot: Pilot) -> None:
    connection = pilot.connect(SotwConnection)
    with pytest.raises(UnknownTypeError, match=r"envoy\.config\.secret"):
        connection.handle(sotw("type.googleapis.com/envoy.config.secret.v3.Secret"))
    with pytest.raises(UnknownTypeError):
        pilot.connect(DeltaConnection).handle(delta("garbage"))


@pytest.mark.parametrize(
    ("node_id", "metadata", "message"),
    [
        ("", {}, "must carry a node"),
        ("not-a-sidecar", {}, "is not of the form"),
        (NODE_ID, {"SPLITMESH_OUTBOUND_PORT": "http"}, "SPLITMESH_OUTBOUND_PORT"),
    ],
)
async def test_a_node_that_describes_no_proxy_is_refused(
    pilot: Pilot, node_id: str, metadata: dict[str, Any], message: str
) -> None:
    with pytest.raises(BadNodeError, match=message):
        pilot.server.connect(node(node_id, **metadata), peer="test", kind=SotwConnection)
    assert pilot.server.status().connections == ()


async def test_config_that_does_not_parse_is_rejected_and_the_last_good_kept(
    pilot: Pilot,
) -> None:
    version = await pilot.load(BASE)
    entries = next(s for s in collections(BASE) if s.collection.endswith("serviceentries"))
    broken = McpResource(name="shop/broken", version="1", body={"hosts": "not-a-list"})

    with pytest.raises(ConfigRejectedError, match="ServiceEntry shop/broken"):
        await pilot.store.apply(
            CollectionSnapshot(
                collection=entries.collection,
                version="broken",
                resources={**entries.resources, broken.name: broken},
            )
        )

    assert pilot.store.status().collections[entries.collection].version == entries.version
    assert pilot.server.snapshot is not None
    assert pilot.server.snapshot.version == version


async def test_store_is_synced_only_once_every_collection_arrived(pilot: Pilot) -> None:
    snapshots = collections(BASE)
    for snapshot in snapshots[:-1]:
        await pilot.store.apply(snapshot)
    assert not pilot.store.synced
    assert pilot.store.status().version is None

    await pilot.store.apply(snapshots[-1])

    assert pilot.store.synced
    assert len(pilot.store.services()) == 2
