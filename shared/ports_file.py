"""A Component that publishes a process's bound ports as a JSON file.

Services bind port 0 in tests and local runs; the parent (launcher, tests, benchmarks)
learns the real ports by waiting for this file (see :mod:`shared.process`). It is written
atomically once every earlier component has started, and removed on stop.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol


class Listener(Protocol):
    """Anything with a bound port (GrpcServer, HttpServer)."""

    @property
    def port(self) -> int:
        """The bound port (valid after start)."""
        ...


class PortsFile:
    """Writes ``{name: port}`` for the given listeners (or fixed ports) to ``path`` on start."""

    name = "ports-file"

    def __init__(self, path: Path, listeners: Mapping[str, Listener | int]) -> None:
        self._path = path
        self._listeners = listeners

    async def start(self) -> None:
        """Write the file atomically (a reader never sees half of it)."""
        ports = {
            name: item if isinstance(item, int) else item.port
            for name, item in self._listeners.items()
        }
        partial = self._path.with_suffix(self._path.suffix + ".partial")
        partial.write_text(json.dumps(ports))
        partial.replace(self._path)

    async def stop(self) -> None:
        """Remove the file. Idempotent."""
        self._path.unlink(missing_ok=True)
