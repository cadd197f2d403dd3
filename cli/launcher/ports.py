"""Ports the launcher chooses for its children, below the kernel's ephemeral range.

A port the launcher chooses (an app's port, a sidecar's Envoy admin and outbound ports,
Redis's port) is handed to a child that binds it a moment later. Had it come from
``bind(0)``, it would lie in the ephemeral range, where any other process's ``bind(0)`` or
outgoing connection could take it in between. :class:`PortPicker` therefore picks at
random below ``/proc/sys/net/ipv4/ip_local_port_range`` (never below 1024), checks that
the port can be bound right now, and never hands out the same port twice. Services that
bind port 0 themselves and report it (Galley, Pilot, Citadel, Mixer) keep doing so.

Not thread-safe: one owner (the mesh) picks. Raises :class:`PortPickError` when no
bindable port was found after many tries.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_SPAN = 10_000
_TRIES = 1_000
_DEFAULT_EPHEMERAL_LOW = 32768


class PortPickError(RuntimeError):
    """No bindable port was found below the ephemeral range."""


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (32768 when it cannot be read)."""
    try:
        return int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _DEFAULT_EPHEMERAL_LOW


def bindable(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a TCP listener could bind ``host:port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class PortPicker:
    """Hands out distinct bindable ports below the ephemeral range (see the module)."""

    def __init__(self, *, reserved: frozenset[int] = frozenset()) -> None:
        """``reserved`` ports are never handed out (for example ports named in config)."""
        self._given: set[int] = set(reserved)

    def pick(self) -> int:
        """A port nobody listens on, not handed out before by this picker."""
        high = ephemeral_low()
        low = max(1024, high - _SPAN)
        for _ in range(_TRIES):
            port = random.randrange(low, high)
            if port not in self._given and bindable(port):
                self._given.add(port)
                return port
        raise PortPickError(f"no free port in {low}..{high - 1} after {_TRIES} tries")

    def pick_many(self, count: int) -> list[int]:
        """``count`` distinct ports."""
        return [self.pick() for _ in range(count)]
