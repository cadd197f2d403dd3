"""The launcher file and Pilot's sync page as the launcher reads them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cli.launcher.pilot_view import parse_sync
from cli.launcher.workloads import Workload, WorkloadsError, load_workloads

REPO = Path(__file__).resolve().parents[3]


def test_the_demo_launcher_file_loads_and_fills_in_ports() -> None:
    parsed = load_workloads(REPO / "examples" / "apps" / "workloads.yaml")
    assert parsed.workdir == REPO
    by_name = {w.name: w for w in parsed.workloads}
    assert sorted(by_name) == [
        "catalog-v1",
        "catalog-v2",
        "catalog-v3",
        "ratings-v1",
        "storefront-v1",
    ]
    storefront = by_name["storefront-v1"]
    assert (storefront.service, storefront.port) == ("storefront.shop.svc.cluster.local", 18080)
    argv = storefront.app_argv(app_port=28080, outbound_port=15001)
    assert argv[0] == sys.executable
    assert argv[-4:] == ["--port", "28080", "--sidecar-port", "15001"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "workloads: [{name: a, service: a.b, port: 1, command: [x]}, "
            "{name: a, service: a.b, port: 2, command: [x]}]",
            "repeated: ['a']",
        ),
        ("workloads: [{name: a, service: a.b.svc, command: [x]}]", "given together"),
        ("workloads: [{name: a}]", "needs the command"),
        ("workloads: [{name: A_b, command: [x]}]", "workloads.0.name"),
        ("workloads: [{name: a, command: [x], port: 70000, service: s}]", "workloads.0.port"),
        ("workloads: [{name: a, command: [x], colour: blue}]", "workloads.0.colour"),
        ("workloads: [", "while parsing"),
    ],
)
def test_bad_launcher_file_names_file_and_field(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "workloads.yaml"
    path.write_text(text)
    with pytest.raises(WorkloadsError) as raised:
        load_workloads(path)
    assert str(path) in str(raised.value)
    assert problem in str(raised.value)


def test_gateway_workload_needs_no_app() -> None:
    gateway = Workload(name="ingressgateway", namespace="istio-system", type="router")
    assert not gateway.has_app


def test_sync_page_reports_nacks_and_the_newest_stream_of_a_proxy() -> None:
    nack = {"version": "v2", "nonce": "7", "message": "invalid perl operator: (?="}
    page = {
        "version": "v2",
        "proxies": [
            {
                "proxy": "sidecar~a",
                "protocol": "sotw",
                "version": "v1",
                "in_sync": True,
                "types": {},
            },
            {
                "proxy": "sidecar~a",
                "protocol": "delta",
                "version": "v2",
                "in_sync": False,
                "types": {
                    "rds": {"acked_version": "v1", "nacks": 2, "last_nack": nack},
                    "cds": {"acked_version": "v2", "nacks": 0, "last_nack": None},
                },
            },
        ],
    }
    (proxy,) = parse_sync(page).values()
    assert (proxy.protocol, proxy.in_sync, proxy.nacks) == ("delta", False, 2)
    assert proxy.last_nack == "rds: invalid perl operator: (?="
    assert proxy.acked == {"rds": "v1", "cds": "v2"}


def test_sync_page_of_something_else_is_refused() -> None:
    with pytest.raises(ValueError, match="no list of proxies"):
        parse_sync({"status": "ok"})
