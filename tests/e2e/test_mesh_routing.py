"""Real traffic through real Envoys, routed by Istio config: file → Galley → Pilot → Envoy.

Every test runs against the whole local mesh twice: sidecars on state-of-the-world and on
delta xDS (the ``shop_mesh`` fixture). Requests go to the storefront's sidecar outbound
port with the Host header naming the destination, the way the storefront app calls. A
test that changes config or stops a service puts things back before it returns.
"""

from __future__ import annotations

import json
import statistics
import threading
from collections import Counter

import httpx
import pytest

from cli.launcher.demo import Reply, send
from shared.process import ServiceProcess, python_module
from tests.e2e.conftest import (
    CANARY,
    CATALOG,
    DELAY_S,
    RATINGS,
    STOREFRONT,
    WAIT_S,
    ShopMesh,
    catalog_config,
)

pytestmark = pytest.mark.slow


def versions(replies: list[Reply]) -> Counter[str | None]:
    return Counter(reply.version for reply in replies)


def test_weighted_routing_follows_the_configured_split(shop_mesh: ShopMesh) -> None:
    replies = shop_mesh.send(CATALOG, 2000)
    assert all(reply.status == 200 for reply in replies)
    seen = versions(replies)
    for version, weight in CANARY.items():
        share = seen[version] * 100 / len(replies)
        assert abs(share - weight) <= 5, f"{version}: {share:.1f} % for weight {weight} ({seen})"


def test_short_host_names_resolve_in_the_proxy_namespace(shop_mesh: ShopMesh) -> None:
    for host in ("catalog", "catalog.shop", "catalog.shop.svc", f"{CATALOG}:8080"):
        (reply,) = shop_mesh.send(host, 1, headers={"x-user": "tester"})
        assert (reply.status, reply.version) == (200, "v3"), host


def test_header_match_routes_testers_to_v3(shop_mesh: ShopMesh) -> None:
    replies = shop_mesh.send(CATALOG, 50, headers={"x-user": "tester"})
    assert versions(replies) == {"v3": 50}


def test_fault_abort_returns_the_configured_status(shop_mesh: ShopMesh) -> None:
    replies = shop_mesh.send(CATALOG, 20, headers={"x-test": "abort"})
    assert Counter(reply.status for reply in replies) == {418: 20}


def test_fault_delay_adds_the_configured_time(shop_mesh: ShopMesh) -> None:
    delayed = shop_mesh.send(CATALOG, 5, headers={"x-test": "delay"})
    assert all(reply.status == 200 for reply in delayed)
    assert min(reply.seconds for reply in delayed) >= DELAY_S - 0.01  # timer granularity
    plain = shop_mesh.send(CATALOG, 5)
    assert statistics.median(reply.seconds for reply in plain) < DELAY_S


def test_retries_turn_upstream_503s_into_successes(shop_mesh: ShopMesh) -> None:
    without = shop_mesh.send(RATINGS, 20, headers={"x-test": "noretry"})
    assert Counter(reply.status for reply in without) == {200: 10, 503: 10}
    retried = shop_mesh.send(RATINGS, 20)
    assert Counter(reply.status for reply in retried) == {200: 20}


def test_route_timeout_returns_504(shop_mesh: ShopMesh) -> None:
    (reply,) = send_path(shop_mesh, "/?sleep_ms=2000", {"x-test": "timeout"})
    assert reply.status == 504
    assert reply.seconds < 1.5


def send_path(shop_mesh: ShopMesh, path: str, headers: dict[str, str]) -> list[Reply]:
    """One GET of ``path`` on catalog through the storefront's sidecar."""
    response = httpx.get(
        f"http://127.0.0.1:{shop_mesh.outbound}{path}",
        headers={"host": CATALOG, **headers},
        timeout=10,
    )
    return [Reply(response.status_code, None, response.elapsed.total_seconds())]


def test_storefront_calls_its_dependencies_through_its_sidecar(shop_mesh: ShopMesh) -> None:
    (reply,) = shop_mesh.send(STOREFRONT, 1, headers={"x-user": "tester"})
    assert reply.status == 200
    inbound = shop_mesh.mesh.workloads["storefront-v1"].ports["inbound"]
    page = httpx.get(f"http://127.0.0.1:{inbound}/", headers={"x-user": "tester"}, timeout=10)
    body = page.json()
    assert body["catalog"]["status"] == 200
    assert body["catalog"]["body"]["version"] == "v3"
    assert body["ratings"]["status"] == 200, json.dumps(body)


def test_a_config_file_change_reaches_envoy(shop_mesh: ShopMesh) -> None:
    shop_mesh.apply("catalog.yaml", catalog_config({"v2": 100}))
    try:
        assert versions(shop_mesh.send(CATALOG, 30)) == {"v2": 30}
    finally:
        shop_mesh.apply("catalog.yaml", catalog_config())
    assert len(versions(shop_mesh.send(CATALOG, 100))) > 1


def test_config_envoy_rejects_is_nacked_and_the_last_good_keeps_serving(
    shop_mesh: ShopMesh,
) -> None:
    good = shop_mesh.version()
    # Python's re (Galley's check) accepts a lookahead; Envoy's RE2 does not.
    bad = catalog_config({"v3": 100}, extra_match="{regex: '/(?=never)'}")
    shop_mesh.write("catalog.yaml", bad)
    try:
        node = shop_mesh.mesh.workloads["storefront-v1"].node_id

        def nacked() -> bool:
            proxy = shop_mesh.sync().get(node)
            return shop_mesh.version() != good and proxy is not None and proxy.nacks > 0

        shop_mesh.wait_for(nacked, "Envoy never NACKed the config it cannot load")
        proxy = shop_mesh.sync()[node]
        assert not proxy.in_sync
        assert proxy.last_nack is not None and "(?=" in proxy.last_nack  # Envoy's own error
        seen = versions(shop_mesh.send(CATALOG, 100))
        assert set(seen) >= {"v1", "v2"}, f"the rejected all-v3 config is serving: {seen}"
    finally:
        shop_mesh.apply("catalog.yaml", catalog_config())
    assert all(proxy.in_sync for proxy in shop_mesh.sync().values())


def test_pilot_restarted_under_traffic(shop_mesh: ShopMesh) -> None:
    replies: list[Reply] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            replies.extend(send(shop_mesh.outbound, CATALOG, 10))

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        shop_mesh.mesh.pilot.stop()
        during = len(replies)
        shop_mesh.wait_for(lambda: len(replies) > during + 50, "no traffic while Pilot was down")
        shop_mesh.mesh.pilot.start(WAIT_S)
        shop_mesh.mesh.wait_in_sync(WAIT_S)
    finally:
        stop.set()
        sender.join()
    assert len(replies) > 50
    assert Counter(reply.status for reply in replies) == {200: len(replies)}
    assert set(shop_mesh.sync()) >= set(shop_mesh.node_ids())
    shop_mesh.apply("catalog.yaml", catalog_config({"v1": 100}))
    try:
        assert versions(shop_mesh.send(CATALOG, 20)) == {"v1": 20}
    finally:
        shop_mesh.apply("catalog.yaml", catalog_config())


def test_galley_stopped_pilot_keeps_serving_old_and_new_proxies(shop_mesh: ShopMesh) -> None:
    mesh = shop_mesh.mesh
    mesh.galley.stop()
    probe: ServiceProcess | None = None
    try:
        assert versions(shop_mesh.send(CATALOG, 20, headers={"x-user": "tester"})) == {"v3": 20}
        run_dir = mesh.options.run_dir / "probe"
        probe = ServiceProcess(
            python_module("sidecar"),
            log_path=run_dir / "agent.log",
            env={
                "SPLITMESH_SIDECAR_WORKLOAD_NAME": "probe",
                "SPLITMESH_SIDECAR_NAMESPACE": "shop",
                "SPLITMESH_SIDECAR_PILOT_ADDRESS": f"127.0.0.1:{mesh.pilot.ports['grpc']}",
                "SPLITMESH_SIDECAR_DELTA_XDS": str(shop_mesh.protocol == "delta").lower(),
                "SPLITMESH_SIDECAR_RUN_DIR": str(run_dir),
                "SPLITMESH_SIDECAR_PORTS_FILE": str(run_dir / "ports.json"),
                "SPLITMESH_SIDECAR_DRAIN_TIME_S": "0.1",
            },
            ports_file=run_dir / "ports.json",
        )
        probe.start()
        ports = probe.wait_ready(WAIT_S)
        replies = send(ports["outbound"], CATALOG, 20, headers={"x-user": "tester"})
        assert versions(replies) == {"v3": 20}
    finally:
        if probe is not None:
            assert probe.stop() == 0
        mesh.galley.start(WAIT_S)
    shop_mesh.wait_for(
        lambda: mesh.pilot.running and shop_mesh.version() is not None, "Pilot lost its config"
    )
