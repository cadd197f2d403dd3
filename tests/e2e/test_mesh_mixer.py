"""Mixer mode end to end: file → Galley → Pilot → real Envoys → real Mixer, and back.

A small shop (storefront and catalog v1 with their sidecars) runs with a MeshConfig that
turns Mixer on (``mixerCheckServer``/``mixerReportServer`` point at a real Mixer process
following the same Galley) and three rules: a denier for ``x-blocked: true``, a memquota
of :data:`QUOTA` requests per source workload for requests marked ``x-quota: on``, and
Istio's standard metrics (built into Mixer). Requests go through the storefront's
sidecar to catalog's; Check, quota and reports are made by catalog's inbound sidecar
(reports by both). The last test stops Mixer and flips ``policyCheckFailOpen``.
"""

from __future__ import annotations

import random
import socket
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cli.launcher.mesh import Mesh, MeshOptions
from shared.process import ServiceProcess, python_module
from tests.e2e.conftest import CATALOG, ShopMesh, shop_workloads

pytestmark = pytest.mark.slow

QUOTA = 5
SETTLE_S = 0.5  # ten times the report flush interval below
SOURCE = "storefront-v1"
START_TIMEOUT_S = 60.0
_ENV = {
    "SPLITMESH_GALLEY_DEBOUNCE_QUIET_S": "0.05",
    "SPLITMESH_GALLEY_DEBOUNCE_MAX_S": "0.2",
    "SPLITMESH_PILOT_DEBOUNCE_QUIET_S": "0.05",
    "SPLITMESH_PILOT_DEBOUNCE_MAX_S": "0.5",
    "SPLITMESH_SIDECAR_ENVOY_CONCURRENCY": "1",
}


def mesh_config(mixer_grpc: int, *, fail_open: bool) -> str:
    """Mixer mode on, both roles on one Mixer, checks failing open or closed."""
    return f"""\
apiVersion: mesh.istio.io/v1alpha1
kind: MeshConfig
metadata: {{name: mesh, namespace: istio-system}}
spec:
  disablePolicyChecks: false
  policyCheckFailOpen: {str(fail_open).lower()}
  mixerCheckServer: 127.0.0.1:{mixer_grpc}
  mixerReportServer: 127.0.0.1:{mixer_grpc}
  reportBatchMaxTime: 50ms
"""


POLICY = f"""\
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {{name: deny-blocked, namespace: shop}}
spec:
  compiledAdapter: denier
  params: {{status: {{code: 7, message: blocked by policy}}}}
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {{name: denyrequest, namespace: shop}}
spec: {{compiledTemplate: checknothing}}
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {{name: deny-blocked, namespace: shop}}
spec:
  match: request.headers["x-blocked"] == "true"
  actions: [{{handler: deny-blocked, instances: [denyrequest]}}]
---
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {{name: per-source, namespace: shop}}
spec:
  compiledAdapter: memquota
  params:
    quotas: [{{name: requestcount.instance.shop, maxAmount: {QUOTA}, validDuration: 300s}}]
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {{name: requestcount, namespace: shop}}
spec:
  compiledTemplate: quota
  params:
    dimensions: {{source: 'source.workload.name | "unknown"'}}
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {{name: per-source, namespace: shop}}
spec:
  match: request.headers["x-quota"] == "on" && source.workload.name == "{SOURCE}"
  actions: [{{handler: per-source, instances: [requestcount]}}]
"""


def unassigned_ports(count: int) -> list[int]:
    """``count`` distinct bindable ports below the kernel's ephemeral range.

    They are written into config before anything binds them, so they must not be ports
    that ``bind(0)`` (the launcher's own port picking) could hand to another process.
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports: list[int] = []
    while len(ports) < count:
        port = random.randrange(max(1024, low - 10_000), low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in ports:
            ports.append(port)
    return ports


def services_config(ports: Mapping[str, int]) -> str:
    """ServiceEntries for storefront and catalog, one workload each."""
    return "---\n".join(
        "apiVersion: networking.istio.io/v1alpha3\nkind: ServiceEntry\n"
        f"metadata: {{name: {service}, namespace: shop}}\n"
        f"spec:\n  hosts: [{service}.shop.svc.cluster.local]\n"
        "  location: MESH_INTERNAL\n  resolution: STATIC\n"
        "  ports: [{number: 8080, name: http, protocol: HTTP}]\n"
        f"  endpoints:\n    - address: 127.0.0.1\n      ports: {{http: {ports[workload]}}}\n"
        f"      labels: {{app: {service}, version: v1}}\n"
        for service, workload in (("storefront", SOURCE), ("catalog", "catalog-v1"))
    )


class MixerRun:
    """``python -m services.mixer`` (role ``all``) on fixed ports, following Galley."""

    def __init__(self, *, galley_mcp: int, ports: Mapping[str, int], logs: Path) -> None:
        self.ports = dict(ports)
        self._logs = logs
        self._env = {
            "SPLITMESH_MIXER_GALLEY_ADDRESS": f"127.0.0.1:{galley_mcp}",
            "SPLITMESH_MIXER_GRPC_PORT": str(ports["grpc"]),
            "SPLITMESH_MIXER_HTTP_PORT": str(ports["http"]),
            "SPLITMESH_MIXER_REPORT_BATCH_MAX_TIME_S": "0.02",
            "SPLITMESH_MIXER_MCP_MAX_BACKOFF_S": "0.5",
            "SPLITMESH_MIXER_LOG_JSON": "false",
        }
        self._process: ServiceProcess | None = None

    def start(self) -> None:
        """Start and wait until it compiled the shop's handlers."""
        ports_file = self._logs / "mixer.ports.json"
        self._process = ServiceProcess(
            python_module("services.mixer"),
            log_path=self._logs / "mixer.log",
            env={**self._env, "SPLITMESH_MIXER_PORTS_FILE": str(ports_file)},
            ports_file=ports_file,
        )
        self._process.start()
        self._process.wait_ready(START_TIMEOUT_S)
        wanted = {"deny-blocked.handler.shop", "per-source.handler.shop"}
        ShopMesh.wait_for(
            lambda: wanted <= set(self._get("/debug/configz").json()["handlers"]),
            "Mixer never compiled the shop's handlers",
        )

    def stop(self) -> None:
        """SIGTERM and wait. Idempotent."""
        process, self._process = self._process, None
        if process is not None:
            process.stop()

    @property
    def pid(self) -> int | None:
        """The pid while running."""
        return None if self._process is None else self._process.pid

    def requests_total(self, **labels: str) -> float:
        """``istio_requests_total`` summed over the samples carrying ``labels``."""
        text = self._get("/metrics").text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "istio_requests_total" and labels.items() <= sample.labels.items()
        )

    def _get(self, path: str) -> httpx.Response:
        response = httpx.get(f"http://127.0.0.1:{self.ports['http']}{path}", timeout=10)
        response.raise_for_status()
        return response


@dataclass
class MixerShop(ShopMesh):
    """The shop plus its Mixer."""

    mixer: MixerRun

    def statuses(self, count: int, headers: dict[str, str] | None = None) -> Counter[int]:
        """Status codes of ``count`` requests from the storefront's sidecar to catalog."""
        return Counter(reply.status for reply in self.send(CATALOG, count, headers=headers))


@pytest.fixture(scope="module")
def mixer_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MixerShop]:
    """storefront and catalog v1 with sidecars, Galley, Pilot and Mixer (fail closed)."""
    root = tmp_path_factory.mktemp("mixer-mesh")
    config = root / "config"
    config.mkdir()
    storefront, catalog, mixer_grpc, mixer_http = unassigned_ports(4)
    ports = {SOURCE: storefront, "catalog-v1": catalog}
    (config / "services.yaml").write_text(services_config(ports))
    (config / "mesh.yaml").write_text(mesh_config(mixer_grpc, fail_open=False))
    (config / "policy.yaml").write_text(POLICY)
    mesh = Mesh(
        MeshOptions(
            config_dir=config,
            workloads=shop_workloads(ports),
            run_dir=root / "run",
            env=_ENV,
            drain_time_s=0.1,
        )
    )
    mesh.start()  # Galley's ports are known once it runs
    mixer = MixerRun(
        galley_mcp=mesh.galley.ports["mcp"],
        ports={"grpc": mixer_grpc, "http": mixer_http},
        logs=root / "run" / "logs",
    )
    try:
        mixer.start()
        yield MixerShop(mesh=mesh, config_dir=config, protocol="sotw", mixer=mixer)
    finally:
        mixer.stop()
        mesh.stop()


def test_the_denier_denies_what_its_rule_matches(mixer_shop: MixerShop) -> None:
    assert mixer_shop.statuses(5, {"x-blocked": "true"}) == {403: 5}
    assert mixer_shop.statuses(5, {"x-blocked": "no"}) == {200: 5}
    response = httpx.get(
        f"http://127.0.0.1:{mixer_shop.outbound}/",
        headers={"host": CATALOG, "x-blocked": "true"},
        timeout=10,
    )
    assert response.text == "PERMISSION_DENIED:deny-blocked.handler.shop:blocked by policy"


def test_quota_allows_n_requests_per_source_then_answers_429(mixer_shop: MixerShop) -> None:
    assert mixer_shop.statuses(QUOTA + 3, {"x-quota": "on"}) == {200: QUOTA, 429: 3}
    assert mixer_shop.statuses(3) == {200: 3}  # the rule does not match: no quota


def test_both_sidecars_report_every_request_to_mixer(mixer_shop: MixerShop) -> None:
    labels = {"destination_service": CATALOG, "source_workload": SOURCE, "response_code": "200"}

    def counts() -> dict[str, float]:
        return {
            reporter: mixer_shop.mixer.requests_total(reporter=reporter, **labels)
            for reporter in ("source", "destination")
        }

    before: list[dict[str, float]] = []

    def settled() -> bool:  # earlier tests' reports may still be on their way
        before[:] = [counts()]
        time.sleep(SETTLE_S)
        return counts() == before[0]

    mixer_shop.wait_for(settled, "Mixer's request counts never settled")
    assert mixer_shop.statuses(10) == {200: 10}
    expected = {reporter: count + 10 for reporter, count in before[0].items()}
    mixer_shop.wait_for(lambda: counts() == expected, f"Mixer never counted {expected}")


def test_with_mixer_down_checks_fail_closed_or_open_as_meshconfig_says(
    mixer_shop: MixerShop,
) -> None:
    grpc = mixer_shop.mixer.ports["grpc"]
    mixer_shop.mixer.stop()
    opened = False
    try:
        assert mixer_shop.statuses(5) == {503: 5}
        mixer_shop.apply("mesh.yaml", mesh_config(grpc, fail_open=True))
        opened = True
        # Pooled connections may reach catalog's old listener until it has drained.
        mixer_shop.wait_for(lambda: mixer_shop.statuses(1) == {200: 1}, "checks never failed open")
        assert mixer_shop.statuses(5) == {200: 5}
    finally:
        if opened:
            mixer_shop.apply("mesh.yaml", mesh_config(grpc, fail_open=False))
        mixer_shop.mixer.start()
    assert mixer_shop.statuses(3) == {200: 3}
