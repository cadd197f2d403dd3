"""The machine a benchmark ran on, as docs/PERFORMANCE.md records it.

:func:`describe` reads ``/proc/cpuinfo`` and ``/proc/meminfo`` (Linux) and falls back to
``"unknown"`` for anything it cannot read; it never raises. Returns a fresh dict.
"""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path


def describe() -> dict[str, str | int]:
    """CPU count and model, RAM, OS, Python version, the date (UTC) and the load average.

    ``load`` is the 1/5/15-minute load average when the run started: on a 2-core machine
    anything near 2 or above means other work competed with the benchmarks.
    """
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": _proc_field("/proc/cpuinfo", "model name") or "unknown",
        "memory": _memory(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load": " ".join(f"{value:.2f}" for value in os.getloadavg()),
    }


def _memory() -> str:
    total = _proc_field("/proc/meminfo", "MemTotal")
    if total is None or not total.endswith(" kB"):
        return "unknown"
    return f"{int(total.removesuffix(' kB')) / 1024**2:.1f} GiB"


def _proc_field(path: str, name: str) -> str | None:
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None
