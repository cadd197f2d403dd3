"""A local mesh for the Pilot benchmarks: Galley, Pilot and sidecar workloads with real Envoys.

:class:`BenchMesh` is a synchronous context manager around the launcher's
:class:`~cli.launcher.mesh.Mesh`: entering it writes ``files`` (relative name → YAML text)
into ``work_dir/config`` and starts Galley, Pilot and each workload (its app, its agent and
the agent's Envoy), gated on readiness and on every proxy ACKing its config; leaving it
stops them all. :class:`Debounce` sets Galley's store debounce and Pilot's push debounce,
each with quiet = max, so a single change waits exactly that long in each. Envoys run with
one worker thread (``--concurrency 1``), as in the e2e tests: this is a 2-core machine.

:func:`app_workloads`, :func:`service_entries` and :func:`routes` describe the benchmark
application: ``count`` copies of the demo shop app (``app-<i>`` in namespace ``bench``,
service ``app-<i>.bench.svc.cluster.local``), one ServiceEntry each, and for ``app-0`` a
VirtualService (whose timeout the propagation benchmark changes) and a DestinationRule.

Measuring: :meth:`BenchMesh.write` replaces a config file atomically (as an editor saves)
and returns when it did; :meth:`BenchMesh.syncz` reads Pilot's ``/debug/syncz``;
:meth:`BenchMesh.galley_publish_after` finds in Galley's log when it next published a
collection (millisecond resolution, wall clock). :func:`median_target_figures` is the
p50/p90/p99 trio of a benchmark whose target is on the median.

Ownership: the mesh owns its child processes and ``work_dir``'s contents. Use it from the
main thread only (a child's parent-death signal follows the thread that spawned it).
Errors: :class:`~cli.launcher.mesh.MeshStartError` if a component does not start (all
started ones are stopped again); ``httpx.HTTPError`` when Pilot does not answer.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from bench.results import Figure, Target
from bench.stats import percentiles
from cli.launcher.mesh import Mesh, MeshOptions
from cli.launcher.workloads import Workload, WorkloadsFile
from sidecar.agent import free_port

NAMESPACE = "bench"
REPO = Path(__file__).resolve().parents[1]
_HTTP_TIMEOUT_S = 10.0
_LOG_SLACK_S = 0.001  # log times are truncated to the millisecond
_PUBLISHED = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO services\.galley\.core\.store: published (.*)$"
)


@dataclass(frozen=True, slots=True)
class Debounce:
    """Galley's store debounce and Pilot's push debounce, in seconds (quiet = max)."""

    galley_s: float
    pilot_s: float

    def env(self) -> dict[str, str]:
        """The services' environment for these settings."""
        galley, pilot = str(self.galley_s), str(self.pilot_s)
        return {
            "SPLITMESH_GALLEY_DEBOUNCE_QUIET_S": galley,
            "SPLITMESH_GALLEY_DEBOUNCE_MAX_S": galley,
            "SPLITMESH_PILOT_DEBOUNCE_QUIET_S": pilot,
            "SPLITMESH_PILOT_DEBOUNCE_MAX_S": pilot,
        }


def median_target_figures(
    name: str, samples: Sequence[float], unit: str, target: Target
) -> list[Figure]:
    """``<name> p50``, ``p90`` and ``p99`` of ``samples``; the target applies to p50."""
    return [
        Figure(f"{name} {key}", value, unit, target if key == "p50" else None)
        for key, value in percentiles(samples).items()
    ]


def host(index: int) -> str:
    """The service host of ``app-<index>``."""
    return f"app-{index}.{NAMESPACE}.svc.cluster.local"


def endpoint_ports(count: int) -> list[int]:
    """``count`` distinct free ports: the mesh endpoints the sidecars will bind."""
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def app_workloads(ports: Sequence[int]) -> tuple[Workload, ...]:
    """Workload ``app-<i>`` (the demo shop app) with its sidecar on endpoint ``ports[i]``."""
    return tuple(
        Workload(
            name=f"app-{index}",
            namespace=NAMESPACE,
            service_account=f"app-{index}",
            labels={"app": f"app-{index}", "version": "v1"},
            service=host(index),
            port=port,
            command=(
                "{python}",
                "-m",
                "examples.apps.shop",
                "--service",
                f"app-{index}",
                "--namespace",
                NAMESPACE,
                "--port",
                "{app_port}",
            ),
        )
        for index, port in enumerate(ports)
    )


def service_entries(ports: Sequence[int]) -> str:
    """One STATIC ServiceEntry per workload of :func:`app_workloads`."""
    return "---\n".join(
        "apiVersion: networking.istio.io/v1alpha3\nkind: ServiceEntry\n"
        f"metadata: {{name: app-{index}, namespace: {NAMESPACE}}}\n"
        f"spec:\n  hosts: [{host(index)}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n"
        "  ports: [{number: 8080, name: http, protocol: HTTP}]\n"
        f"  endpoints:\n    - address: 127.0.0.1\n      ports: {{http: {port}}}\n"
        f"      labels: {{app: app-{index}, version: v1}}\n"
        for index, port in enumerate(ports)
    )


def routes(timeout_ms: int) -> str:
    """app-0's VirtualService (default route with timeout ``timeout_ms``) and DestinationRule."""
    return f"""\
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {{name: app-0, namespace: {NAMESPACE}}}
spec:
  hosts: [{host(0)}]
  http:
    - name: testers
      match: [{{headers: {{x-user: {{exact: tester}}}}}}]
      route: [{{destination: {{host: {host(0)}, subset: v1}}}}]
    - name: default
      timeout: {timeout_ms}ms
      retries: {{attempts: 2, retryOn: 5xx}}
      route: [{{destination: {{host: {host(0)}, subset: v1}}}}]
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {{name: app-0, namespace: {NAMESPACE}}}
spec:
  host: {host(0)}
  subsets: [{{name: v1, labels: {{version: v1}}}}]
"""


class BenchMesh:
    """Galley, Pilot and workloads for one benchmark; see the module docstring."""

    def __init__(
        self,
        *,
        work_dir: Path,
        files: Mapping[str, str],
        debounce: Debounce,
        workloads: Sequence[Workload] = (),
        delta: bool = False,
        start_timeout_s: float = 120.0,
        progress: Callable[[str], None],
    ) -> None:
        self.config_dir = work_dir / "config"
        self.debounce = debounce
        self._files = dict(files)
        self._progress = progress
        self.mesh = Mesh(
            MeshOptions(
                config_dir=self.config_dir,
                workloads=WorkloadsFile(workdir=REPO, workloads=tuple(workloads)),
                run_dir=work_dir / "run",
                delta=delta,
                env={**debounce.env(), "SPLITMESH_SIDECAR_ENVOY_CONCURRENCY": "1"},
                start_timeout_s=start_timeout_s,
                drain_time_s=0.1,
            ),
            report=progress,
        )
        self._galley_log = work_dir / "run" / "logs" / "galley.log"

    def __enter__(self) -> Self:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        for name, text in self._files.items():
            self.write(name, text)
        self.mesh.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.mesh.stop()

    def pilot_pid(self) -> int:
        """Pilot's process id (it must be running)."""
        pid = self.mesh.pilot.pid
        if pid is None:
            raise RuntimeError("Pilot is not running")
        return pid

    def write(self, name: str, text: str) -> float:
        """Replace config file ``name`` atomically; the wall time of the rename."""
        target = self.config_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_text(text)
        written = time.time()
        partial.replace(target)
        return written

    def syncz(self) -> dict[str, Any]:
        """Pilot's ``/debug/syncz`` page (``version``, ``released_at``, ``proxies``)."""
        response = httpx.get(self.mesh.pilot.url("/debug/syncz"), timeout=_HTTP_TIMEOUT_S)
        response.raise_for_status()
        page: dict[str, Any] = response.json()
        return page

    def galley_publish_after(self, wall: float, collection: str) -> float | None:
        """When Galley first published ``collection`` at or after ``wall`` (None: not yet)."""
        for line in self._galley_log.read_text(errors="replace").splitlines():
            match = _PUBLISHED.match(line)
            if match is None:
                continue
            when = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            published = {item.partition("@")[0] for item in match[2].split(", ")}
            if when >= wall - _LOG_SLACK_S and collection in published:
                return when
        return None
