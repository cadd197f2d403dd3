"""What ``splitmesh galley|pilot|mixer|citadel`` share: flags over the environment, then
run the service in the foreground with a live view.

:func:`settings_from_flags` overlays the given flag values (``None`` = not given) on the
``SPLITMESH_<SERVICE>_*`` environment and turns a bad value into a usage error naming the
setting. :func:`run_in_foreground` sets up human-readable logs and telemetry, builds the
service inside the event loop, runs its host until Ctrl-C/SIGTERM and, every half
second, calls ``view(service)``: a non-None fingerprint different from the last one
makes it call ``render(service)``. A failed start exits 1 with the reason.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Protocol, TypeVar

import typer

from shared.lifecycle import ComponentHost, StartupError
from shared.settings import SettingsBase, SettingsError
from shared.telemetry import configure_logging, configure_telemetry

REFRESH_S = 0.5


class Hosted(Protocol):
    """A built service: something with a component host."""

    @property
    def host(self) -> ComponentHost:
        """The host that starts and stops the service's components."""
        ...


S = TypeVar("S", bound=SettingsBase)
A = TypeVar("A", bound=Hosted)


def settings_from_flags(settings_type: type[S], **flags: Any) -> S:
    """Environment settings with the given flags (and text logs) on top, validated."""
    try:
        return settings_type.from_env(os.environ).with_overrides(log_json=False, **flags)
    except SettingsError as exc:
        raise typer.BadParameter(str(exc)) from exc


def run_in_foreground(
    *,
    name: str,
    settings: S,
    build: Callable[[S], A],
    view: Callable[[A], object | None],
    render: Callable[[A], None],
) -> None:
    """Run the service until stopped; see the module docstring."""
    configure_logging(getattr(settings, "log_level", "info"), json=False)
    configure_telemetry(name, otlp_endpoint=getattr(settings, "otlp_endpoint", None))
    try:
        asyncio.run(_serve(settings, build, view, render))
    except StartupError as exc:
        typer.echo(f"{name}: {exc}", err=True)
        raise typer.Exit(1) from exc


async def _serve(
    settings: S,
    build: Callable[[S], A],
    view: Callable[[A], object | None],
    render: Callable[[A], None],
) -> None:
    service = build(settings)
    runner = asyncio.create_task(service.host.run())
    shown: object | None = None
    while not runner.done():
        await asyncio.wait({runner}, timeout=REFRESH_S)
        if runner.done():
            break
        fingerprint = view(service)
        if fingerprint is not None and fingerprint != shown:
            shown = fingerprint
            render(service)
    runner.result()


# The flags every service command shares (None = not given: the environment decides).
HostFlag = Annotated[str | None, typer.Option(help="Address every listener binds.")]
HttpPortFlag = Annotated[int | None, typer.Option(help="Health, metrics and debug port.")]
PortsFileFlag = Annotated[Path | None, typer.Option(help="Write the bound ports here as JSON.")]
LogLevelFlag = Annotated[str | None, typer.Option(help="debug, info, warning or error.")]
QuietFlag = Annotated[bool, typer.Option("--quiet", help="No live view; logs only.")]
DebounceQuietFlag = Annotated[float | None, typer.Option(help="Seconds of quiet before a push.")]
DebounceMaxFlag = Annotated[
    float | None, typer.Option(help="Longest a change waits for a push (s).")
]
