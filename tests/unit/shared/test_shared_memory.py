"""shared.memory: large freed buffers go back to the kernel (glibc)."""

from __future__ import annotations

import subprocess
import sys

_PROBE = """
import sys
from shared.memory import release_large_blocks

def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

if sys.argv[1] == "tuned":
    assert release_large_blocks()
# A first big block freed raises glibc's mmap threshold; later 4 MB buffers then come
# from the heap, and a small block allocated after them keeps the heap from shrinking.
first = bytes(8 << 20)
del first
blocks = [b"x" * (4 << 20) for _ in range(40)]  # 160 MB, written
pin = bytes(4096)
after_alloc = rss_kb()
del blocks
print(after_alloc - rss_kb())
"""


def _freed_kb(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


def test_freed_large_buffers_are_returned_to_the_kernel() -> None:
    assert _freed_kb("tuned") > 120_000  # most of the 160 MB left the process


def test_without_it_glibc_keeps_them() -> None:  # what the tuning is for
    assert _freed_kb("default") < 40_000
