"""The ``python -m <service>`` entry point every service shares (what a container runs).

:func:`run_service` reads the service's settings from the environment only, sets up
logs (JSON lines on stderr) and telemetry, builds the service inside the event loop and
runs its component host until SIGTERM/SIGINT; glibc is told to give large freed blocks
back to the kernel (:mod:`shared.memory`). Any argument prints the module's docstring
and the settings' environment variables (exit 0 for ``-h``/``--help``, 2 otherwise).
Exit status: 0 after a clean stop, 2 for an invalid setting (or another ``usage_errors``
exception), 1 when start-up fails.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, TypeVar

from shared.lifecycle import ComponentHost, StartupError
from shared.memory import release_large_blocks
from shared.settings import SettingsBase, SettingsError
from shared.telemetry import configure_logging, configure_telemetry


class _Hosted(Protocol):
    @property
    def host(self) -> ComponentHost: ...


class _LoggedSettings(Protocol):
    @property
    def log_level(self) -> str: ...

    @property
    def log_json(self) -> bool: ...


S = TypeVar("S", bound=SettingsBase)


def run_service(
    *,
    name: str,
    doc: str,
    settings_type: type[S],
    build: Callable[[S], _Hosted],
    argv: Sequence[str],
    environ: Mapping[str, str],
    otlp_endpoint: Callable[[S], str | None] | None = None,
    telemetry_name: Callable[[S], str] | None = None,
    usage_errors: tuple[type[Exception], ...] = (),
) -> int:
    """Run one service to completion; see the module docstring. Returns the exit status."""
    if argv:
        print(doc.strip())
        print("\nSettings (environment variables):")
        for field in dataclasses.fields(settings_type):
            print(f"  {settings_type.env_name(field.name)} (default {field.default!r})")
        return 0 if argv[0] in ("-h", "--help") else 2
    try:
        settings = settings_type.from_env(environ)
    except SettingsError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    logged: _LoggedSettings = settings  # type: ignore[assignment]
    configure_logging(logged.log_level, json=logged.log_json)
    release_large_blocks()
    if otlp_endpoint is not None:
        service = name if telemetry_name is None else telemetry_name(settings)
        configure_telemetry(service, otlp_endpoint=otlp_endpoint(settings))

    async def serve() -> None:
        await build(settings).host.run()

    try:
        asyncio.run(serve())
    except usage_errors as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    return 0
