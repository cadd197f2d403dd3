"""Sidecar start-up: from starting the agent until the first request routed through it.

Galley, Pilot and two workloads run as local processes
(:class:`bench.pilot_mesh.BenchMesh`): ``app-0`` (the destination, with its sidecar) and
``app-1`` (the client). app-1's agent is then stopped and started again 10 times, the way
the launcher starts it (a new ``python -m sidecar`` process: it writes the bootstrap and
starts Envoy, which fetches its config from Pilot over ADS). Each time, from the spawn,
this process polls every 5 ms: Envoy's admin port (when it first answers: Envoy is up),
admin ``/ready`` (200 once Envoy's initial xDS fetch completed) and a GET through app-1's
outbound listener with ``Host: app-0.bench.svc.cluster.local``; the first 200 from app-0's
app through both sidecars ends the run. Figures: the median (target ≤ 1 s), p90 and p99
of spawn → first routed request, and the medians of the two intermediate stages.
Quick mode: 2 starts.
"""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass

from bench.pilot_mesh import (
    BenchMesh,
    Debounce,
    app_workloads,
    endpoint_ports,
    host,
    median_target_figures,
    routes,
    service_entries,
)
from bench.registry import Benchmark, RunContext
from bench.results import Figure, Result, Target
from bench.stats import median
from cli.launcher.mesh import WorkloadRun

TARGET_S = Target("<=", 1.0)
CLIENT = "app-1"
_POLL_S = 0.005
_PROBE_TIMEOUT_S = 1.0
_LIMIT_S = 30.0
_STARTS, _QUICK_STARTS = 10, 2
_DEBOUNCE = Debounce(galley_s=0.1, pilot_s=0.1)


@dataclass(frozen=True, slots=True)
class Start:
    """One agent start, seconds from the spawn: admin up, Envoy ready, first routed 200."""

    admin_s: float
    ready_s: float
    routed_s: float


def run(context: RunContext) -> Result:
    """Start the mesh, then restart the client's agent and time each start."""
    starts = _QUICK_STARTS if context.quick else _STARTS
    ports = endpoint_ports(2)
    files = {"services.yaml": service_entries(ports), "routes.yaml": routes(1000)}
    with BenchMesh(
        work_dir=context.work_dir,
        files=files,
        debounce=_DEBOUNCE,
        workloads=app_workloads(ports),
        progress=context.progress,
    ) as mesh:
        client = mesh.mesh.workloads[CLIENT]
        pilot = mesh.mesh.pilot.ports["grpc"]
        measured = []
        for number in range(starts):
            context.progress(f"agent start {number + 1}/{starts}")
            _stop_agent(client)
            measured.append(_start(client, pilot))
    return Result(
        benchmark=BENCHMARK.name,
        figures=tuple(start_figures(measured)),
        parameters={"starts": starts, "envoy_concurrency": 1, "poll_ms": _POLL_S * 1000},
    )


def start_figures(starts: list[Start]) -> list[Figure]:
    """The end-to-end percentiles (target on the median) and the stage medians, in s."""
    figures = median_target_figures(
        "agent start → first routed request", [s.routed_s for s in starts], "s", TARGET_S
    )
    figures += [
        Figure(
            "median: agent start → Envoy admin answers", median([s.admin_s for s in starts]), "s"
        ),
        Figure("median: agent start → Envoy ready (xDS)", median([s.ready_s for s in starts]), "s"),
    ]
    return figures


def _stop_agent(run: WorkloadRun) -> None:
    if run.agent is not None:
        run.agent.stop()


def _start(run: WorkloadRun, pilot_grpc_port: int) -> Start:
    """Spawn ``run``'s agent and poll until a request routes through it."""
    started = time.monotonic()
    run.start_agent(pilot_grpc_port)
    admin = ready = None
    while True:
        now = time.monotonic() - started
        if ready is None:
            status = _get(run.ports["admin"], "/ready", "localhost")
            admin = now if admin is None and status is not None else admin
            ready = now if status == 200 else None
        if _get(run.ports["outbound"], "/", host(0)) == 200:
            return Start(admin_s=admin or now, ready_s=ready or now, routed_s=now)
        if now > _LIMIT_S or run.agent is None or not run.agent.running():
            tail = "" if run.agent is None else run.agent.log_tail()
            raise TimeoutError(f"no request routed through {CLIENT}'s sidecar: {tail}")
        time.sleep(_POLL_S)


def _get(port: int, path: str, host_header: str) -> int | None:
    """The status of ``GET path`` on 127.0.0.1:``port``; None when nothing answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=_PROBE_TIMEOUT_S)
    try:
        connection.request("GET", path, headers={"Host": host_header})
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


BENCHMARK = Benchmark(
    name="agent-start",
    summary="sidecar agent start → first request routed through it (target median ≤ 1 s)",
    run=run,
)
