"""The latency mutual TLS adds between two real sidecars, at a fixed rate, open loop.

Galley, Pilot and Citadel run as processes (:mod:`bench.mtls_mesh`), with a ``server``
workload (the demo shop app behind its sidecar) and a ``client`` sidecar, both with
identities from Citadel. Two ServiceEntries name the same server endpoint: ``plain``
(DestinationRule ``tls: DISABLE``) and ``mtls`` (``tls: ISTIO_MUTUAL``); the server's
inbound port is PERMISSIVE, so it serves both on one listener and only the hop between
the sidecars differs. This process sends GETs to the client sidecar's outbound port at
a fixed rate, alternating the two hosts request by request (A and B interleaved, so both
see the same machine at the same moments), open loop: each request is due at
``start + i / rate`` and its latency runs from that moment to the end of its response,
so queueing delays count (no coordinated omission). Requests ride on a pool of
keep-alive HTTP/1.1 connections (new ones are opened when all are busy).

Each round discards its first second (warm-up). Figures: plaintext and mTLS p50/p90/p99
and the difference at each percentile, as the median over rounds, in milliseconds. The
run fails if the client sidecar's ``mtls`` cluster made no TLS handshake or its
``plain`` cluster made one. Quick mode: 1 round of 2 s at 40 requests/s; full: 3 rounds
of 15 s at 200 requests/s.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass

import httpx

from bench.mtls_mesh import CitadelRun, agent_settings, control_plane, start_agent, start_shop_app
from bench.pilot_mesh import endpoint_ports
from bench.registry import Benchmark, RunContext
from bench.results import Figure, Result
from bench.stats import median, percentiles
from cli.launcher.mesh import Mesh
from cli.launcher.pilot_view import fetch_sync
from shared.process import ServiceProcess
from sidecar.agent import free_port

NAMESPACE = "bench"
HOSTS = {"plaintext": "plain", "mTLS": "mtls"}
_WARMUP_S = 1.0
_WAIT_S = 30.0
_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class _Size:
    rounds: int
    seconds: float
    rate: float


_FULL, _QUICK = _Size(rounds=3, seconds=15.0, rate=200.0), _Size(rounds=1, seconds=2.0, rate=40.0)


def config(server_port: int) -> dict[str, str]:
    """MeshConfig, the two ServiceEntries and their DestinationRules."""
    files = {
        "mesh.yaml": (
            "apiVersion: mesh.istio.io/v1alpha1\nkind: MeshConfig\n"
            "metadata: {name: mesh, namespace: istio-system}\nspec: {trustDomain: cluster.local}\n"
        )
    }
    for name, mode in (("plain", "DISABLE"), ("mtls", "ISTIO_MUTUAL")):
        host = f"{name}.{NAMESPACE}.svc.cluster.local"
        files[f"{name}.yaml"] = (
            "apiVersion: networking.istio.io/v1alpha3\nkind: ServiceEntry\n"
            f"metadata: {{name: {name}, namespace: {NAMESPACE}}}\n"
            f"spec:\n  hosts: [{host}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n"
            "  ports: [{number: 8080, name: http, protocol: HTTP}]\n"
            f"  endpoints:\n    - address: 127.0.0.1\n      ports: {{http: {server_port}}}\n"
            "      serviceAccount: server\n---\n"
            "apiVersion: networking.istio.io/v1alpha3\nkind: DestinationRule\n"
            f"metadata: {{name: {name}, namespace: {NAMESPACE}}}\n"
            f"spec:\n  host: {host}\n  trafficPolicy: {{tls: {{mode: {mode}}}}}\n"
        )
    return files


def run(context: RunContext) -> Result:
    """Start the mesh, run the rounds, stop everything."""
    size = _QUICK if context.quick else _FULL
    root = context.work_dir / "mtls-overhead"
    (server_port,) = endpoint_ports(1)
    context.progress("starting Galley, Pilot and Citadel")
    mesh = control_plane(root, config(server_port), {"SPLITMESH_PILOT_DEBOUNCE_QUIET_S": "0.05"})
    citadel = CitadelRun(root / "citadel")
    processes: list[ServiceProcess] = []
    try:
        citadel.start()
        app_port = free_port()
        processes.append(start_shop_app(root, "server", app_port))
        context.progress("starting the server and client sidecars")
        pilot = mesh.pilot.ports["grpc"]
        server, _ = start_agent(
            agent_settings(
                workload="server",
                namespace=NAMESPACE,
                service_account="server",
                pilot_grpc_port=pilot,
                citadel=citadel,
                run_dir=root / "server",
                inbound=f"{server_port}:{app_port}:plain.{NAMESPACE}.svc.cluster.local",
            )
        )
        processes.append(server)
        client, ports = start_agent(
            agent_settings(
                workload="client",
                namespace=NAMESPACE,
                service_account="client",
                pilot_grpc_port=pilot,
                citadel=citadel,
                run_dir=root / "client",
            )
        )
        processes.append(client)
        _wait_ready(mesh, ports["outbound"])
        rounds = []
        for number in range(size.rounds):
            context.progress(
                f"round {number + 1}/{size.rounds}: {size.rate:g}/s, {size.seconds:g} s"
            )
            rounds.append(asyncio.run(_round(ports["outbound"], size)))
        handshakes = {name: _handshakes(ports["admin"], host) for name, host in HOSTS.items()}
    finally:
        for process in reversed(processes):
            process.stop()
        citadel.stop()
        mesh.stop()
    if handshakes["mTLS"] == 0 or handshakes["plaintext"] != 0:
        raise RuntimeError(f"the hosts did not use the transport they should: {handshakes}")
    return Result(
        benchmark=BENCHMARK.name,
        figures=tuple(overhead_figures(rounds)),
        parameters={
            "rounds": size.rounds,
            "seconds_per_round": size.seconds,
            "requests_per_s": size.rate,
            "envoy_concurrency": 1,
        },
        notes=tuple(_errors(rounds)),
    )


_Round = dict[str, list[float]]  # host kind → latencies (s); "errors" → one per failure


def overhead_figures(rounds: list[_Round]) -> list[Figure]:
    """Per-kind percentiles and the mTLS minus plaintext differences, medians over rounds, ms."""
    per_round = [{kind: percentiles(r[kind]) for kind in HOSTS} for r in rounds]
    figures = []
    for kind in HOSTS:
        for key in ("p50", "p90", "p99"):
            value = median([found[kind][key] for found in per_round]) * 1000
            figures.append(Figure(f"{kind} {key}", value, "ms"))
    for key in ("p50", "p90", "p99"):
        added = [found["mTLS"][key] - found["plaintext"][key] for found in per_round]
        figures.append(Figure(f"{key} added by mTLS", median(added) * 1000, "ms"))
    return figures


def _errors(rounds: list[_Round]) -> list[str]:
    failed = sum(len(r.get("errors", [])) for r in rounds)
    return [f"{failed} requests failed and are not counted"] if failed else []


def _wait_ready(mesh: Mesh, outbound: int) -> None:
    deadline = time.monotonic() + _WAIT_S
    while True:
        statuses = []
        for host in HOSTS.values():
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{outbound}/",
                    headers={"host": f"{host}.{NAMESPACE}.svc.cluster.local"},
                    timeout=_TIMEOUT_S,
                )
                statuses.append(response.status_code)
            except httpx.HTTPError:
                statuses.append(0)
        synced = all(p.in_sync for p in fetch_sync(mesh.pilot.url("/debug/syncz")).values())
        if synced and statuses == [200, 200]:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the sidecars never served both hosts: {statuses}")
        time.sleep(0.05)


def _handshakes(admin_port: int, host: str) -> int:
    name = f"cluster.outbound|8080||{host}.{NAMESPACE}.svc.cluster.local.ssl.handshake"
    text = httpx.get(f"http://127.0.0.1:{admin_port}/stats", timeout=_TIMEOUT_S).text
    for line in text.splitlines():
        key, _, value = line.partition(": ")
        if key == name:
            return int(value)
    return 0


class _Connections:
    """Idle keep-alive connections to one port; a new one when none is idle."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def get(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._idle:
            return self._idle.pop()
        return await asyncio.open_connection("127.0.0.1", self._port)

    def put(self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        self._idle.append(connection)

    async def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


async def _round(port: int, size: _Size) -> _Round:
    """One open-loop round; latencies by kind, warm-up excluded."""
    loop = asyncio.get_running_loop()
    connections = _Connections(port)
    count = int(size.rate * size.seconds)
    start = loop.time() + 0.05
    kinds = list(HOSTS)
    tasks = []
    for number in range(count):
        due = start + number / size.rate
        await asyncio.sleep(max(0.0, due - loop.time()))
        kind = kinds[number % 2]
        tasks.append(asyncio.create_task(_request(connections, kind, due)))
    results: _Round = defaultdict(list)
    for number, (kind, latency) in enumerate(await asyncio.gather(*tasks)):
        if number / size.rate >= _WARMUP_S:
            results[kind if latency is not None else "errors"].append(latency or 0.0)
    await connections.close()
    return dict(results)


async def _request(connections: _Connections, kind: str, due: float) -> tuple[str, float | None]:
    """One GET; its latency from ``due``, or None if it failed."""
    host = f"{HOSTS[kind]}.{NAMESPACE}.svc.cluster.local"
    request = f"GET /items HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    try:
        reader, writer = await connections.get()
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _TIMEOUT_S)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
        return kind, None
    latency = asyncio.get_running_loop().time() - due
    connections.put((reader, writer))
    return kind, latency if head.startswith(b"HTTP/1.1 200") else None


BENCHMARK = Benchmark(
    name="mtls-overhead",
    summary="latency mTLS adds between two sidecars at a fixed rate (p50/p90/p99, recorded)",
    run=run,
)
