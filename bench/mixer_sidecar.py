"""Mixer's Check through a real sidecar, open loop: latency it adds, CPU it costs.

Targets (issue 5): at 500 requests/s over 16 connections, Check adds ≤ 2 ms at p90 over
no Check; Mixer spends ≤ 0.3 CPU-seconds per 1,000 checks.

The mesh (:class:`bench.pilot_mesh.BenchMesh`): Galley, Pilot, two workloads of the demo
app with real sidecars (agent + Envoy, one worker thread each) — ``app-0`` the client,
``app-1`` the server — and Mixer as a process (``python -m services.mixer``, role
``all``) following the same Galley, with a small policy (:data:`POLICY`): a denier on
``x-blocked: true`` and a blacklist of ``x-user`` values. Load: k6 (:mod:`bench.mixer_k6`)
sends to ``app-0``'s sidecar outbound port with ``Host: app-1…``; ``app-0``'s Envoy
routes to ``app-1``'s inbound listener, where Check runs (Pilot's mixer mode puts
ext_authz on inbound HTTP connection managers only), then to ``app-1``'s app.

Two arms, interleaved in one run (A, B, A, B…, ``rounds`` pairs), switched by rewriting
the MeshConfig and waiting until every proxy ACKed it and a probe with ``x-blocked:
true`` gets the arm's answer (A: 200, B: 403 from Mixer's denier):

- A: no Check — MeshConfig without ``mixerCheckServer`` (Mixer runs, idle);
- B: Check on — ``mixerCheckServer`` = Mixer, failing closed. No reports in either arm
  (no ``mixerReportServer``), so B - A is the Check alone.

Per arm: p50/p90/p99 (median over rounds of each k6 run's percentiles), and B - A at
each percentile (median over rounds of the round's difference). CPU seconds from
``/proc`` of each process over each k6 run: Mixer per 1,000 checks (checks counted by
Mixer's ``mixer_checks_total``), both Envoys, the server app and k6 itself per 1,000
requests; Mixer's RSS and peak RSS at the end. The benchmark owns the mesh, Mixer, k6
and ``work_dir``; it runs on the main thread (the mesh requires it).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench import procstat
from bench.mixer_k6 import Load, k6_version, run_k6
from bench.mixer_workload import check_policy
from bench.pilot_mesh import (
    BenchMesh,
    Debounce,
    app_workloads,
    endpoint_ports,
    host,
    service_entries,
)
from bench.registry import Benchmark, RunContext
from bench.results import Figure, Result, Target
from bench.stats import median
from shared.process import ServiceProcess, python_module

RATE = 500
CONNECTIONS = 16
TARGET_ADDED_P90_MS = Target("<=", 2)
TARGET_MIXER_CPU_S = Target("<=", 0.3)
POLICY = check_policy("bench")
_HANDLERS = {"deny-blocked.handler.bench", "users.handler.istio-system"}
_WAIT_S = 60.0
_PROBES = 5  # consecutive probes with the arm's answer before measuring
_PERCENTILES = ("p50", "p90", "p99")


@dataclass(frozen=True, slots=True)
class _Size:
    rounds: int
    seconds: int
    warmup: int


_FULL = _Size(rounds=3, seconds=25, warmup=300)
_QUICK = _Size(rounds=1, seconds=3, warmup=20)


@dataclass(slots=True)
class _Arm:
    """What one arm measured over its rounds."""

    loads: list[Load] = field(default_factory=list)
    cpu_s: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    checks: float = 0.0

    @property
    def requests(self) -> int:
        return sum(load.requests for load in self.loads)

    def per_1000(self, seconds: float, count: float | None = None) -> float:
        return seconds / (self.requests if count is None else count) * 1000

    def percentile(self, key: str) -> float:
        return median([load.percentiles[key] for load in self.loads])


def mesh_config(check_server: str | None) -> str:
    """Arm B with ``check_server`` (Check on, failing closed), arm A without (None)."""
    check = "" if check_server is None else f"  mixerCheckServer: {check_server}\n"
    return (
        "apiVersion: mesh.istio.io/v1alpha1\nkind: MeshConfig\n"
        "metadata: {name: mesh, namespace: istio-system}\n"
        f"spec:\n  disablePolicyChecks: {str(check_server is None).lower()}\n"
        f"  policyCheckFailOpen: false\n{check}"
    )


def run(context: RunContext) -> Result:
    """Run the arms (module docstring)."""
    size = _QUICK if context.quick else _FULL
    k6 = k6_version()  # fails fast when k6 is not installed
    ports = endpoint_ports(2)
    files = {
        "services.yaml": service_entries(ports),
        "mesh.yaml": mesh_config(None),
        "policy.yaml": POLICY,
    }
    arms = {"A": _Arm(), "B": _Arm()}
    with BenchMesh(
        work_dir=context.work_dir,
        files=files,
        debounce=Debounce(galley_s=0.05, pilot_s=0.05),
        workloads=app_workloads(ports),
        progress=context.progress,
    ) as bench:
        mixer = _start_mixer(context, bench.mesh.galley.ports["mcp"])
        try:
            memory = _measure(context, size, bench, mixer, arms)
        finally:
            mixer.process.stop()
    return _result(size, arms, memory, k6)


@dataclass(frozen=True, slots=True)
class _Mixer:
    process: ServiceProcess
    pid: int
    grpc: int
    http: int

    def get(self, path: str) -> httpx.Response:
        response = httpx.get(f"http://127.0.0.1:{self.http}{path}", timeout=10)
        response.raise_for_status()
        return response

    def checks(self) -> float:
        text = self.get("/metrics").text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "mixer_checks_total"
        )


def _start_mixer(context: RunContext, galley_mcp: int) -> _Mixer:
    context.progress("starting Mixer")
    ports_file = context.work_dir / "mixer.ports.json"
    process = ServiceProcess(
        python_module("services.mixer"),
        log_path=context.work_dir / "run" / "logs" / "mixer.log",
        env={
            "SPLITMESH_MIXER_GALLEY_ADDRESS": f"127.0.0.1:{galley_mcp}",
            "SPLITMESH_MIXER_GRPC_PORT": "0",
            "SPLITMESH_MIXER_HTTP_PORT": "0",
            "SPLITMESH_MIXER_PORTS_FILE": str(ports_file),
            "SPLITMESH_MIXER_LOG_LEVEL": "warning",
        },
        ports_file=ports_file,
    )
    process.start()
    try:
        ports = process.wait_ready(_WAIT_S)
        assert process.pid is not None
        mixer = _Mixer(process=process, pid=process.pid, grpc=ports["grpc"], http=ports["http"])
        _wait(
            lambda: set(mixer.get("/debug/configz").json()["handlers"]) >= _HANDLERS,
            f"Mixer never compiled the bench policy (see {process.log_path})",
        )
    except BaseException:
        process.stop()
        raise
    return mixer


def _measure(
    context: RunContext, size: _Size, bench: BenchMesh, mixer: _Mixer, arms: dict[str, _Arm]
) -> procstat.Memory:
    outbound = bench.mesh.workloads["app-0"].ports["outbound"]
    pids = _pids(bench, mixer)
    current = "A"
    for number in range(1, size.rounds + 1):
        for name, arm in arms.items():
            if name != current:
                _switch(bench, name, mixer, outbound)
                current = name
            _warm_up(outbound, size.warmup)
            context.progress(
                f"round {number}/{size.rounds}, arm {name}: {RATE} rps for {size.seconds} s"
            )
            cpu_before = {key: _cpu(group) for key, group in pids.items()}
            checks_before = mixer.checks()
            load = run_k6(
                port=outbound,
                host=host(1),
                rate=RATE,
                connections=CONNECTIONS,
                seconds=size.seconds,
                work_dir=context.work_dir,
            )
            arm.checks += mixer.checks() - checks_before
            for key, group in pids.items():
                arm.cpu_s[key] += _cpu(group) - cpu_before[key]
            arm.cpu_s["k6"] += load.k6_cpu_s
            arm.loads.append(load)
            cuts = " / ".join(f"{load.percentiles[key]:.2f}" for key in _PERCENTILES)
            context.progress(
                f"arm {name}: p50/p90/p99 {cuts} ms, {load.requests} requests, "
                f"{load.dropped} dropped, {load.failed} failed"
            )
    return procstat.memory(mixer.pid)


def _switch(bench: BenchMesh, arm: str, mixer: _Mixer, outbound: int) -> None:
    """Rewrite the MeshConfig for ``arm``; return once the sidecars behave accordingly."""
    before = bench.syncz().get("version")
    bench.write("mesh.yaml", mesh_config(f"127.0.0.1:{mixer.grpc}" if arm == "B" else None))
    _wait(lambda: bench.syncz().get("version") != before, "Pilot never took the MeshConfig")
    bench.mesh.wait_in_sync(_WAIT_S)
    expected = 403 if arm == "B" else 200
    answers: list[int] = []

    def settled() -> bool:  # connections to the old listener drain away first
        answers.append(_probe(outbound))
        return answers[-_PROBES:] == [expected] * _PROBES

    _wait(settled, f"arm {arm}: blocked requests never got {expected} (got {answers[-5:]})")


def _probe(outbound: int) -> int:
    headers = {"host": host(1), "x-blocked": "true"}
    return httpx.get(f"http://127.0.0.1:{outbound}/", headers=headers, timeout=10).status_code


def _warm_up(outbound: int, count: int) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{outbound}", timeout=10) as client:
        for n in range(count):
            client.get(f"/items/{n % 50}", headers={"host": host(1), "x-user": f"user-{n % 20}"})


def _pids(bench: BenchMesh, mixer: _Mixer) -> dict[str, list[int]]:
    envoys: list[int] = []
    for name in ("app-0", "app-1"):
        agent = bench.mesh.workloads[name].agent
        assert agent is not None and agent.pid is not None
        envoys += [pid for pid in _children(agent.pid) if _comm(pid) == "envoy"]
    if len(envoys) != 2:
        raise RuntimeError(f"expected 2 Envoy processes, found {envoys}")
    server = bench.mesh.workloads["app-1"].app
    assert server is not None and server.pid is not None
    return {"mixer": [mixer.pid], "envoy": envoys, "app": [server.pid]}


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == parent:
                found.append(int(entry.name))
    return found


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _cpu(pids: list[int]) -> float:
    return sum(procstat.cpu_seconds(pid) for pid in pids)


def _wait(check: Callable[[], bool], message: str) -> None:
    deadline = time.monotonic() + _WAIT_S
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(message)
        time.sleep(0.05)


def _result(size: _Size, arms: dict[str, _Arm], memory: procstat.Memory, k6: str) -> Result:
    a, b = arms["A"], arms["B"]
    figures: list[Figure] = []
    for name, arm in (("no Check (A)", a), ("with Check (B)", b)):
        figures += [Figure(f"{name} {key}", arm.percentile(key), "ms") for key in _PERCENTILES]
    for key in _PERCENTILES:
        added = median(
            [y.percentiles[key] - x.percentiles[key] for x, y in zip(a.loads, b.loads, strict=True)]
        )
        target = TARGET_ADDED_P90_MS if key == "p90" else None
        figures.append(Figure(f"Check adds at {key}", added, "ms", target))
    figures += [
        Figure(
            "Mixer CPU per 1,000 checks", b.per_1000(b.cpu_s["mixer"], b.checks), "CPU-s",
            TARGET_MIXER_CPU_S,
        ),
        Figure("Mixer checks per request (A)", a.checks / a.requests, "checks"),
        Figure("Mixer checks per request (B)", b.checks / b.requests, "checks"),
        Figure("Mixer CPU per 1,000 requests, idle (A)", a.per_1000(a.cpu_s["mixer"]), "CPU-s"),
    ]  # fmt: skip
    for key, label in (("envoy", "both Envoys"), ("app", "server app"), ("k6", "k6 (load)")):
        for name, arm in (("A", a), ("B", b)):
            figures.append(
                Figure(f"{label} CPU per 1,000 requests ({name})", arm.per_1000(arm.cpu_s[key]),
                       "CPU-s")
            )  # fmt: skip
    figures += [
        Figure("Mixer RSS", memory.rss / 2**20, "MiB"),
        Figure("Mixer peak RSS", memory.hwm / 2**20, "MiB"),
    ]
    for name, arm in (("A", a), ("B", b)):
        figures += [
            Figure(f"requests dropped by k6 ({name})", sum(x.dropped for x in arm.loads), "req"),
            Figure(f"requests failed ({name})", sum(x.failed for x in arm.loads), "req"),
        ]
    return Result(
        benchmark=BENCHMARK.name,
        figures=tuple(figures),
        parameters={
            "rate (requests/s)": RATE,
            "connections": CONNECTIONS,
            "seconds per arm": size.seconds,
            "rounds (A then B)": size.rounds,
            "requests A": a.requests,
            "requests B": b.requests,
            "load generator": f"k6 {k6} constant-arrival-rate",
            "Envoy worker threads": 1,
        },
        notes=(
            "k6, both Envoys, both apps, Mixer, Galley and Pilot share the machine's cores; "
            "percentiles are medians over rounds of each k6 run's percentiles.",
        ),
    )


BENCHMARK = Benchmark(
    name="mixer-sidecar",
    summary="Mixer Check through a real sidecar at 500 rps open-loop: added latency, CPU",
    run=run,
)
