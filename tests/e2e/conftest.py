"""The whole local mesh for end-to-end tests: Galley, Pilot, demo apps, agents, Envoys.

``shop_mesh`` (module scope, parametrized ``sotw``/``delta``) starts the demo shop the
way ``splitmesh up`` does (:class:`~cli.launcher.mesh.Mesh`), but on this test's own
config directory and free ports: storefront, catalog v1/v2/v3 and ratings (which fails
every second request). Config is written by :func:`catalog_config`,
:func:`ratings_config` and :func:`services_config`. At teardown every process it
started — Envoys included — must be gone.

:class:`ShopMesh` offers what tests need: requests through the storefront's sidecar
(:meth:`ShopMesh.send`), config edits that wait until every proxy ACKed them
(:meth:`ShopMesh.apply`), Pilot's sync view, and ``wait_for``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cli.launcher.demo import Reply, send
from cli.launcher.mesh import Mesh, MeshOptions
from cli.launcher.pilot_view import ProxySync, fetch_sync
from cli.launcher.ports import PortPicker
from cli.launcher.workloads import Workload, WorkloadsFile
from tests.integration.sidecar.procfs import alive, children

REPO = Path(__file__).resolve().parents[2]
CATALOG = "catalog.shop.svc.cluster.local"
RATINGS = "ratings.shop.svc.cluster.local"
STOREFRONT = "storefront.shop.svc.cluster.local"
SOURCE = "storefront-v1"
CANARY = {"v1": 70, "v2": 20, "v3": 10}
DELAY_S = 0.4
TIMEOUT_S = 0.3
WAIT_S = 20.0

_ENV = {
    "SPLITMESH_GALLEY_DEBOUNCE_QUIET_S": "0.05",
    "SPLITMESH_GALLEY_DEBOUNCE_MAX_S": "0.2",
    "SPLITMESH_PILOT_DEBOUNCE_QUIET_S": "0.05",
    "SPLITMESH_PILOT_DEBOUNCE_MAX_S": "0.5",
    "SPLITMESH_SIDECAR_ENVOY_CONCURRENCY": "1",
}


def catalog_config(canary: Mapping[str, int] = CANARY, *, extra_match: str = "") -> str:
    """catalog's VirtualService and DestinationRule.

    Routes: ``x-user: tester`` → v3; ``x-test: abort`` → 418; ``x-test: delay`` → +0.4 s;
    ``x-test: timeout`` → 0.3 s timeout; ``extra_match`` (a URI match, raw YAML) → v3;
    everything else → the ``canary`` weights.
    """
    weighted = "".join(
        f"        - destination: {{host: {CATALOG}, subset: {subset}}}\n"
        f"          weight: {weight}\n"
        for subset, weight in canary.items()
    )
    extra = (
        f"    - name: extra\n      match: [{{uri: {extra_match}}}]\n"
        f"      route: [{{destination: {{host: {CATALOG}, subset: v3}}}}]\n"
        if extra_match
        else ""
    )
    v1 = f"[{{destination: {{host: {CATALOG}, subset: v1}}}}]"
    return f"""\
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {{name: catalog, namespace: shop}}
spec:
  hosts: [{CATALOG}]
  http:
{extra}    - name: testers
      match: [{{headers: {{x-user: {{exact: tester}}}}}}]
      route: [{{destination: {{host: {CATALOG}, subset: v3}}}}]
    - name: abort
      match: [{{headers: {{x-test: {{exact: abort}}}}}}]
      fault: {{abort: {{httpStatus: 418, percentage: {{value: 100}}}}}}
      route: {v1}
    - name: delay
      match: [{{headers: {{x-test: {{exact: delay}}}}}}]
      fault: {{delay: {{fixedDelay: {int(DELAY_S * 1000)}ms, percentage: {{value: 100}}}}}}
      route: {v1}
    - name: timeout
      match: [{{headers: {{x-test: {{exact: timeout}}}}}}]
      timeout: {int(TIMEOUT_S * 1000)}ms
      route: {v1}
    - name: canary
      route:
{weighted}---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {{name: catalog, namespace: shop}}
spec:
  host: {CATALOG}
  subsets:
    - {{name: v1, labels: {{version: v1}}}}
    - {{name: v2, labels: {{version: v2}}}}
    - {{name: v3, labels: {{version: v3}}}}
"""


def ratings_config() -> str:
    """ratings: ``x-test: noretry`` → no retries; everything else → 3 retries on 5xx."""
    return f"""\
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {{name: ratings, namespace: shop}}
spec:
  hosts: [{RATINGS}]
  http:
    - name: noretry
      match: [{{headers: {{x-test: {{exact: noretry}}}}}}]
      retries: {{attempts: 0}}
      route: [{{destination: {{host: {RATINGS}}}}}]
    - name: default
      retries: {{attempts: 3, retryOn: 5xx}}
      route: [{{destination: {{host: {RATINGS}}}}}]
"""


def services_config(ports: Mapping[str, int], *, sidecar_tls: bool = False) -> str:
    """ServiceEntries for storefront, catalog (v1-v3) and ratings on ``ports`` by workload.

    ``sidecar_tls`` labels every endpoint ``security.istio.io/tlsMode: istio`` (with its
    service account): with auto mTLS, clients then talk mutual TLS to it.
    """
    entries = []
    for service, workloads in (
        ("storefront", ["storefront-v1"]),
        ("catalog", ["catalog-v1", "catalog-v2", "catalog-v3"]),
        ("ratings", ["ratings-v1"]),
    ):
        tls = ", security.istio.io/tlsMode: istio" if sidecar_tls else ""
        account = f"      serviceAccount: {service}\n" if sidecar_tls else ""
        endpoints = "".join(
            f"    - address: 127.0.0.1\n      ports: {{http: {ports[name]}}}\n"
            f"      labels: {{app: {service}, version: {name.rsplit('-', 1)[1]}{tls}}}\n"
            f"{account}"
            for name in workloads
        )
        entries.append(
            "apiVersion: networking.istio.io/v1alpha3\nkind: ServiceEntry\n"
            f"metadata: {{name: {service}, namespace: shop}}\n"
            f"spec:\n  hosts: [{service}.shop.svc.cluster.local]\n"
            "  location: MESH_INTERNAL\n  resolution: STATIC\n"
            "  ports: [{number: 8080, name: http, protocol: HTTP}]\n"
            f"  endpoints:\n{endpoints}"
        )
    return "---\n".join(entries)


def shop_workloads(ports: Mapping[str, int]) -> WorkloadsFile:
    """The demo shop's workloads on the given endpoint ports."""
    workloads = []
    for name, port in ports.items():
        service, version = name.rsplit("-", 1)
        command = ["{python}", "-m", "examples.apps.shop", "--service", service]
        command += ["--version", version, "--port", "{app_port}"]
        if service == "storefront":
            command += ["--sidecar-port", "{outbound_port}"]
        if service == "ratings":
            command += ["--fail-rate", "0.5"]
        workloads.append(
            Workload(
                name=name,
                namespace="shop",
                service_account=service,
                labels={"app": service, "version": version},
                service=f"{service}.shop.svc.cluster.local",
                port=port,
                command=tuple(command),
            )
        )
    return WorkloadsFile(workdir=REPO, workloads=tuple(workloads))


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports below the ephemeral range.

    They go into config before anything binds them, so they must not be ports that a
    ``bind(0)`` elsewhere (a service picking its own port) could take in the meantime.
    """
    return sorted(PortPicker().pick_many(count))


@dataclass
class ShopMesh:
    """A running demo shop (see the module docstring)."""

    mesh: Mesh
    config_dir: Path
    protocol: str

    @property
    def outbound(self) -> int:
        """The storefront sidecar's outbound port."""
        return self.mesh.workloads[SOURCE].ports["outbound"]

    def send(self, host: str, count: int, headers: dict[str, str] | None = None) -> list[Reply]:
        """``count`` GETs to ``host`` through the storefront's sidecar."""
        return send(self.outbound, host, count, headers=headers)

    def sync(self) -> dict[str, ProxySync]:
        """Pilot's view of every connected proxy."""
        return fetch_sync(self.mesh.pilot.url("/debug/syncz"))

    def version(self) -> str | None:
        """Pilot's current config version."""
        response = httpx.get(self.mesh.pilot.url("/debug/syncz"), timeout=5)
        response.raise_for_status()
        version = response.json().get("version")
        return None if version is None else str(version)

    def node_ids(self) -> list[str]:
        """Every workload's proxy id."""
        return [run.node_id for run in self.mesh.workloads.values()]

    def write(self, name: str, text: str) -> None:
        """Replace a config file atomically, as an editor that renames would."""
        partial = self.config_dir / f".{name}.partial"
        partial.write_text(text)
        partial.replace(self.config_dir / name)

    def apply(self, name: str, text: str) -> str:
        """Write a config file and wait until every proxy ACKed the resulting version."""
        before = self.version()
        self.write(name, text)
        self.wait_for(lambda: self.version() != before, f"Pilot never took {name}")
        self.mesh.wait_in_sync(WAIT_S)
        version = self.version()
        assert version is not None
        return version

    @staticmethod
    def wait_for(check: Callable[[], bool], message: str, timeout: float = WAIT_S) -> None:
        """Poll ``check`` until it holds; fail with ``message`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                pytest.fail(f"{message} (after {timeout}s)")
            time.sleep(0.05)


@pytest.fixture(scope="module", params=["sotw", "delta"])
def shop_mesh(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ShopMesh]:
    """The demo shop on free ports, over state-of-the-world or delta xDS."""
    protocol = str(request.param)
    root = tmp_path_factory.mktemp(f"mesh-{protocol}")
    config = root / "config"
    config.mkdir()
    names = ["storefront-v1", "catalog-v1", "catalog-v2", "catalog-v3", "ratings-v1"]
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    (config / "services.yaml").write_text(services_config(ports))
    (config / "catalog.yaml").write_text(catalog_config())
    (config / "ratings.yaml").write_text(ratings_config())
    mesh = Mesh(
        MeshOptions(
            config_dir=config,
            workloads=shop_workloads(ports),
            run_dir=root / "run",
            delta=protocol == "delta",
            env=_ENV,
            drain_time_s=0.1,
        )
    )
    mesh.start()
    try:
        yield ShopMesh(mesh=mesh, config_dir=config, protocol=protocol)
    finally:
        pids = _all_pids(mesh)
        mesh.stop()
    left = [pid for pid in pids if alive(pid)]
    assert not left, f"processes left after the mesh stopped: {left}"


def _all_pids(mesh: Mesh) -> list[int]:
    pids = [pid for pid in (mesh.galley.pid, mesh.pilot.pid) if pid is not None]
    for run in mesh.workloads.values():
        for process in (run.app, run.agent):
            if process is not None and process.pid is not None:
                pids.append(process.pid)
                pids.extend(children(process.pid))
    return pids
