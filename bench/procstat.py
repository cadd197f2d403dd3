"""What Linux says about a process: resident memory and CPU time, from ``/proc``.

Used to measure our services as child processes (Galley now; Pilot and Mixer later).
Each call reads ``/proc/<pid>/...`` afresh; :class:`ProcessLookupError` if the process is
gone, :class:`ValueError` if the file does not have the expected shape. Linux only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_UTIME_FIELD = 13  # 0-based index of utime after the "pid (comm)" prefix is rejoined
_STIME_FIELD = 14


@dataclass(frozen=True, slots=True)
class Memory:
    """Resident set size now (``VmRSS``) and its peak so far (``VmHWM``), in bytes."""

    rss: int
    hwm: int


def memory(pid: int) -> Memory:
    """The process's current and peak resident memory."""
    values: dict[str, int] = {}
    for line in _read(pid, "status").splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            number, unit = rest.split()
            if unit != "kB":
                raise ValueError(f"unexpected unit {unit!r} for {key}")
            values[key] = int(number) * 1024
    if len(values) != 2:
        raise ValueError(f"/proc/{pid}/status has no VmRSS/VmHWM (a kernel thread?)")
    return Memory(rss=values["VmRSS"], hwm=values["VmHWM"])


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds the process (all its threads) has used so far."""
    text = _read(pid, "stat")
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    fields = ["pid", "comm", *text[text.rindex(")") + 2 :].split()]
    ticks = int(fields[_UTIME_FIELD]) + int(fields[_STIME_FIELD])
    return ticks / os.sysconf("SC_CLK_TCK")


def _read(pid: int, name: str) -> str:
    try:
        return Path(f"/proc/{pid}/{name}").read_text()
    except FileNotFoundError:
        raise ProcessLookupError(f"no process {pid}") from None
