"""Allocator tuning for long-running services that build large short-lived buffers.

glibc's malloc serves big blocks with ``mmap`` and gives them back to the kernel on
``free`` — until the first such block is freed: then it raises its mmap threshold (up to
32 MiB), so later multi-megabyte buffers (a Pilot push serializes one xDS response of a
megabyte or more per proxy) come from the heap, and the heap keeps their pages after
``free``. RSS then stays at the peak of the busiest push. :func:`release_large_blocks`
fixes the threshold (and the heap trim threshold) at :data:`LARGE_BLOCK`, so such
buffers are returned to the kernel as soon as they are freed.

It overrides ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` from the
environment. Not glibc (musl, macOS): nothing to do, it returns False. Call once, early,
from the main thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util

LARGE_BLOCK = 128 * 1024
"""Blocks of at least this many bytes are mmapped and unmapped on free."""

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3


def release_large_blocks() -> bool:
    """Fix glibc's mmap and trim thresholds (see the module docstring); False if not glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK) and mallopt(_M_TRIM_THRESHOLD, LARGE_BLOCK))
