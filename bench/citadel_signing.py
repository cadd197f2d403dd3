"""Citadel CSR signing throughput and latency, ECDSA P-256 (target ≥ 500 certs/s, p99 ≤ 20 ms).

Three measurements, all with real tokens (a fresh single-use EdDSA JWT per request, minted
before the clock starts) and real CSRs (a pool of :data:`_KEYS` ECDSA P-256 keys for the
workload's identity, made before the clock starts, used in turn):

- ``server``: the core request path in this process —
  :meth:`~services.citadel.core.authority.CertificateAuthority.create_certificate`
  (token check, CSR parse and checks, signing) called back to back; what one core of
  Citadel can do without gRPC.
- ``closed``: Citadel as a real process (``python -m services.citadel``, JSON logs at
  INFO as deployed); ``concurrency`` tasks of this process each send ``CreateCertificate``
  through the shared :class:`~shared.contracts.ca.client.CertificateClient` as fast as
  answers come. Its rate is the throughput figure held to the target.
- ``open``: the same process at a fixed arrival rate (``rate`` requests/s for
  ``open_s`` seconds, each request started on schedule whatever the others do); latency
  counts from the scheduled start, so a stall is not hidden. Its p99 is held to the target.

Citadel's CPU seconds per 1000 certificates (from ``/proc``) are reported for the open
run. Client and server share the machine's cores, as agents and Citadel would on one
node. Every request must succeed: a refusal is a :class:`RuntimeError` (a broken
benchmark, not a slow one). The benchmark owns the Citadel process and ``work_dir``.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import gc
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench import procstat
from bench.registry import Benchmark, RunContext
from bench.results import Figure, Result, Target, percentile_figures
from bench.stats import median
from services.citadel.adapters.key_files import load_or_create_token_key
from services.citadel.adapters.root_store import FileRootStore
from services.citadel.core.authority import CertificateAuthority, Lifetimes
from services.citadel.core.rotation import SelfSignedRoots
from services.citadel.core.token import TokenVerifier, mint_token
from shared.contracts.ca.client import CertificateClient
from shared.contracts.ca.csr import new_key_and_csr
from shared.contracts.ca.spiffe import SpiffeId
from shared.process import ServiceProcess, python_module

TARGET_RATE = Target(">=", 500)
TARGET_P99_MS = Target("<=", 20)
_IDENTITY = SpiffeId("cluster.local", "bench", "workload")
_KEYS = 50
_START_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class _Size:
    server_requests: int
    closed_requests: int
    concurrency: int
    rate: float
    open_s: float
    runs: int


_FULL = _Size(
    server_requests=3000, closed_requests=3000, concurrency=16, rate=500, open_s=10, runs=3
)
_QUICK = _Size(server_requests=200, closed_requests=200, concurrency=4, rate=100, open_s=1, runs=1)


class _Workload:
    """Pre-made CSRs for one identity and single-use tokens for it."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.csrs = [new_key_and_csr(_IDENTITY)[1] for _ in range(_KEYS)]

    def tokens(self, count: int) -> collections.deque[str]:
        """``count`` fresh tokens, to be used in order."""
        now = time.time()
        return collections.deque(
            mint_token(self._key, _IDENTITY, ttl_s=600, now=now) for _ in range(count)
        )


def run(context: RunContext) -> Result:
    """Run the three measurements (module docstring) and report rates and latencies."""
    size = _QUICK if context.quick else _FULL
    server_rates, server_latencies = [], []
    for number in range(1, size.runs + 1):
        context.progress(f"server-side signing: run {number}/{size.runs}")
        rate, latencies = _server_side(context.work_dir / f"core-{number}", size)
        server_rates.append(rate)
        server_latencies.extend(latencies)
    context.progress("starting Citadel")
    remote = asyncio.run(_end_to_end(context, size))
    figures = [
        Figure("server-side signing rate (median run)", median(server_rates), "certs/s"),
        *percentile_figures("server-side signing latency", _ms(server_latencies), "ms"),
        Figure("gRPC closed-loop rate (median run)", remote.closed_rate, "certs/s", TARGET_RATE),
        *percentile_figures("gRPC closed-loop latency", _ms(remote.closed_latencies), "ms"),
        *percentile_figures(
            f"gRPC open-loop latency at {size.rate:g}/s",
            _ms(remote.open_latencies),
            "ms",
            target_p99=TARGET_P99_MS,
        ),
        Figure("gRPC open-loop achieved rate", remote.open_rate, "certs/s"),
        Figure("Citadel CPU per 1000 certs (open loop)", remote.cpu_per_1000, "CPU-s"),
    ]
    return Result(
        benchmark=BENCHMARK.name,
        figures=tuple(figures),
        parameters={
            "key type": "ecdsa-p256",
            "CSR keys": _KEYS,
            "server requests per run": size.server_requests,
            "closed-loop requests per run": size.closed_requests,
            "concurrency": size.concurrency,
            "open-loop rate": size.rate,
            "open-loop seconds": size.open_s,
            "runs": size.runs,
        },
        notes=("Client and Citadel share the machine; Citadel logs every issuance at INFO.",),
    )


def _server_side(state: Path, size: _Size) -> tuple[float, list[float]]:
    key = Ed25519PrivateKey.generate()
    workload = _Workload(key)
    roots = SelfSignedRoots(
        store=FileRootStore(state),
        key_type="ecdsa-p256",
        trust_domain=_IDENTITY.trust_domain,
        root_ttl=datetime.timedelta(days=3650),
        rotation_fraction=0.2,
        rotation_grace=datetime.timedelta(hours=1),
    )
    roots.load_or_create(datetime.datetime.now(datetime.UTC))
    authority = CertificateAuthority(
        roots=roots,
        verifier=TokenVerifier(
            public_key=key.public_key(), trust_domain=_IDENTITY.trust_domain, max_ttl_s=3600
        ),
        lifetimes=Lifetimes(
            default=datetime.timedelta(days=1), maximum=datetime.timedelta(days=90)
        ),
        allowed_key_types=("ecdsa-p256",),
        max_csr_bytes=16384,
    )
    tokens = workload.tokens(size.server_requests)
    latencies = []
    gc.collect()
    started = time.perf_counter()
    for number, token in enumerate(tokens):
        begun = time.perf_counter()
        authority.create_certificate(
            authorization=f"Bearer {token}", csr_pem=workload.csrs[number % _KEYS], validity_s=0
        )
        latencies.append(time.perf_counter() - begun)
    return size.server_requests / (time.perf_counter() - started), latencies


@dataclass(frozen=True, slots=True)
class _Remote:
    closed_rate: float
    closed_latencies: list[float]
    open_latencies: list[float]
    open_rate: float
    cpu_per_1000: float


async def _end_to_end(context: RunContext, size: _Size) -> _Remote:
    state = context.work_dir / "citadel"
    workload = _Workload(load_or_create_token_key(state / "token-signing.key"))
    ports_file = context.work_dir / "citadel-ports.json"
    process = ServiceProcess(
        python_module("services.citadel"),
        log_path=context.work_dir / "citadel.log",
        env={
            "SPLITMESH_CITADEL_STATE_DIR": str(state),
            "SPLITMESH_CITADEL_GRPC_PORT": "0",
            "SPLITMESH_CITADEL_HTTP_PORT": "0",
            "SPLITMESH_CITADEL_PORTS_FILE": str(ports_file),
            "SPLITMESH_CITADEL_TRUST_DOMAIN": _IDENTITY.trust_domain,
        },
        ports_file=ports_file,
    )
    process.start()
    try:
        ports = process.wait_ready(_START_TIMEOUT_S)
        pid = process.pid
        if pid is None:
            raise RuntimeError("Citadel has no pid")
        tokens: collections.deque[str] = collections.deque()

        async def next_token() -> str:
            return tokens.popleft()

        async with CertificateClient(f"127.0.0.1:{ports['grpc']}", next_token) as client:
            tokens.extend(workload.tokens(size.concurrency))
            await _closed_loop(client, workload, size.concurrency, size.concurrency)  # warm-up
            rates, closed = [], []
            for number in range(1, size.runs + 1):
                context.progress(f"gRPC closed loop: run {number}/{size.runs}")
                tokens.extend(workload.tokens(size.closed_requests))
                rate, latencies = await _closed_loop(
                    client, workload, size.closed_requests, size.concurrency
                )
                rates.append(rate)
                closed.extend(latencies)
            context.progress(f"gRPC open loop at {size.rate:g}/s for {size.open_s:g} s")
            count = int(size.rate * size.open_s)
            tokens.extend(workload.tokens(count))
            cpu_before = procstat.cpu_seconds(pid)
            open_rate, open_latencies = await _open_loop(client, workload, count, size.rate)
            cpu = procstat.cpu_seconds(pid) - cpu_before
    finally:
        process.stop()
    return _Remote(
        closed_rate=median(rates),
        closed_latencies=closed,
        open_latencies=open_latencies,
        open_rate=open_rate,
        cpu_per_1000=cpu / count * 1000,
    )


async def _closed_loop(
    client: CertificateClient, workload: _Workload, count: int, concurrency: int
) -> tuple[float, list[float]]:
    """``concurrency`` tasks send ``count`` requests back to back; (rate, latencies)."""
    numbers = iter(range(count))
    latencies: list[float] = []

    async def worker() -> None:
        for number in numbers:
            begun = time.perf_counter()
            await _sign(client, workload.csrs[number % _KEYS])
            latencies.append(time.perf_counter() - begun)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started), latencies


async def _open_loop(
    client: CertificateClient, workload: _Workload, count: int, rate: float
) -> tuple[float, list[float]]:
    """Start request ``n`` at ``n / rate`` s whatever happens; (achieved rate, latencies).

    Each latency counts from the request's scheduled start.
    """
    loop = asyncio.get_running_loop()
    latencies: list[float] = []

    async def one(number: int, scheduled: float) -> None:
        await _sign(client, workload.csrs[number % _KEYS])
        latencies.append(loop.time() - scheduled)

    tasks = []
    started = loop.time()
    for number in range(count):
        scheduled = started + number / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(number, scheduled)))
    await asyncio.gather(*tasks)
    return count / (loop.time() - started), latencies


async def _sign(client: CertificateClient, csr: str) -> None:
    issued = await client.create_certificate(csr)
    if len(issued.chain) != 2:
        raise RuntimeError(f"unexpected chain of {len(issued.chain)} certificates")


def _ms(seconds: list[float]) -> list[float]:
    return [value * 1000 for value in seconds]


BENCHMARK = Benchmark(
    name="citadel-signing",
    summary="ECDSA CSR signing: certs/s and p99 over gRPC (target ≥ 500/s, p99 ≤ 20 ms)",
    run=run,
)
