"""Agent start until Envoy holds the workload certificate (target median ≤ 300 ms).

Galley, Pilot (:func:`bench.mtls_mesh.control_plane`) and Citadel
(:class:`bench.mtls_mesh.CitadelRun`) run as local processes. The agent is built and
started in this process, the way ``python -m sidecar`` does after reading its settings
(:func:`sidecar.agent.build_agent`, then ``host.start()``), with a fresh bootstrap token
each time, as the launcher writes one per start, and one inbound port, so Pilot gives
its Envoy a PERMISSIVE mTLS listener that asks SDS for the certificate. From the
moment ``host.start()`` is called this process polls Envoy's admin ``/certs`` every 5 ms;
the run ends when Envoy shows the leaf the agent got from Citadel. Stages: the
certificate signed (key, CSR, Citadel round trip; concurrent with Envoy's start), Envoy
live (``host.start()`` returned), Envoy holding the certificate (after its listener came
over xDS and fetched the secret over SDS). Python's own start-up (about 0.4 s for
``python -m sidecar``) is not included: ``agent-start`` measures a whole process start.
Figures: median (target), p90, p99 and the stage medians, in milliseconds.
Quick mode: 2 starts; full: 15.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.mtls_mesh import CitadelRun, control_plane, write_token
from bench.pilot_mesh import median_target_figures
from bench.registry import Benchmark, RunContext
from bench.results import Figure, Result, Target
from bench.stats import median
from sidecar.agent import build_agent, free_port
from sidecar.settings import SidecarSettings

TARGET_MS = Target("<=", 300.0)
NAMESPACE = "bench"
SERVICE_ACCOUNT = "cert-start"
_STARTS, _QUICK_STARTS = 15, 2
_POLL_S = 0.005
_LIMIT_S = 30.0
_MESH = (
    "apiVersion: mesh.istio.io/v1alpha1\nkind: MeshConfig\n"
    "metadata: {name: mesh, namespace: istio-system}\nspec: {trustDomain: cluster.local}\n"
)


@dataclass(frozen=True, slots=True)
class Start:
    """One agent start, in seconds from ``host.start()``."""

    signed_s: float
    live_s: float
    held_s: float


def run(context: RunContext) -> Result:
    """Start the control plane and Citadel, then start the agent repeatedly."""
    starts = _QUICK_STARTS if context.quick else _STARTS
    root = context.work_dir / "agent-cert-start"
    context.progress("starting Galley, Pilot and Citadel")
    mesh = control_plane(root, {"mesh.yaml": _MESH}, {"SPLITMESH_PILOT_DEBOUNCE_QUIET_S": "0.05"})
    citadel = CitadelRun(root / "citadel")
    try:
        citadel.start()
        port, app_port = free_port(), free_port()
        measured = []
        for number in range(starts):
            context.progress(f"agent start {number + 1}/{starts}")
            settings = _settings(root / f"agent-{number}", citadel, mesh.pilot.ports["grpc"])
            settings = settings.with_overrides(
                inbound=(f"{port}:{app_port}:cert-start.{NAMESPACE}.svc.cluster.local",)
            )
            measured.append(asyncio.run(_start(settings)))
    finally:
        citadel.stop()
        mesh.stop()
    return Result(
        benchmark=BENCHMARK.name,
        figures=tuple(start_figures(measured)),
        parameters={"starts": starts, "envoy_concurrency": 1, "poll_ms": _POLL_S * 1000},
    )


def start_figures(starts: list[Start]) -> list[Figure]:
    """The end-to-end percentiles (target on the median) and the stage medians, in ms."""
    figures = median_target_figures(
        "agent start → Envoy holds its certificate",
        [s.held_s * 1000 for s in starts],
        "ms",
        TARGET_MS,
    )
    for name, values in (
        ("median: agent start → certificate signed", [s.signed_s for s in starts]),
        ("median: agent start → Envoy live", [s.live_s for s in starts]),
    ):
        figures.append(Figure(name, median(values) * 1000, "ms"))
    return figures


def _settings(run_dir: Path, citadel: CitadelRun, pilot_grpc_port: int) -> SidecarSettings:
    token = write_token(run_dir / "token", citadel.token(NAMESPACE, SERVICE_ACCOUNT))
    return SidecarSettings(
        workload_name="cert-start",
        namespace=NAMESPACE,
        service_account=SERVICE_ACCOUNT,
        pilot_address=f"127.0.0.1:{pilot_grpc_port}",
        run_dir=run_dir,
        envoy_concurrency=1,
        drain_time_s=0.1,
        citadel_address=citadel.target,
        citadel_token_file=token,
    ).validate()


async def _start(settings: SidecarSettings) -> Start:
    """Start the agent, wait until Envoy shows the certificate, stop it; the timings."""
    agent = build_agent(settings)
    certificates = agent.certificates
    assert certificates is not None
    started = time.perf_counter()

    async def first_certificate() -> tuple[int, float]:
        certificate = await certificates.wait_for(0)
        return certificate.serial, time.perf_counter() - started

    signed = asyncio.create_task(first_certificate())
    try:
        await agent.host.start()
        live = time.perf_counter() - started
        async with httpx.AsyncClient(timeout=1.0) as client:
            while not signed.done() or (
                await _held_serial(client, agent.ports.admin) != signed.result()[0]
            ):
                if time.perf_counter() - started > _LIMIT_S:
                    raise TimeoutError(f"Envoy never held the certificate: {certificates.status()}")
                await asyncio.sleep(_POLL_S)
        held = time.perf_counter() - started
        return Start(signed_s=signed.result()[1], live_s=live, held_s=held)
    finally:
        signed.cancel()
        await agent.host.stop()


async def _held_serial(client: httpx.AsyncClient, admin_port: int) -> int | None:
    try:
        response = await client.get(f"http://127.0.0.1:{admin_port}/certs")
    except httpx.HTTPError:
        return None
    for entry in response.json().get("certificates", []):
        for chain in entry.get("cert_chain", []):
            return int(chain["serial_number"], 16)
    return None


BENCHMARK = Benchmark(
    name="agent-cert-start",
    summary="agent start → Envoy holds the workload certificate (target median ≤ 300 ms)",
    run=run,
)
