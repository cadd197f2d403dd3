"""``splitmesh galley``: run Galley in the foreground with a live view of its config.

Flags override ``SPLITMESH_GALLEY_*`` environment variables. After start-up it prints
what was accepted (per collection) and every current problem, then prints again each
time that changes, until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli.service_runner import (
    DebounceMaxFlag,
    DebounceQuietFlag,
    HostFlag,
    HttpPortFlag,
    LogLevelFlag,
    PortsFileFlag,
    QuietFlag,
    run_in_foreground,
    settings_from_flags,
)
from services.galley.app import Galley, build_galley
from services.galley.core.store import StoreStatus
from services.galley.settings import GalleySettings


def galley_command(
    config_dir: Annotated[
        Path | None, typer.Option(help="Directory of Istio YAML to watch.")
    ] = None,
    host: HostFlag = None,
    mcp_port: Annotated[int | None, typer.Option(help="MCP gRPC port (0: any free port).")] = None,
    http_port: HttpPortFlag = None,
    webhook_port: Annotated[int | None, typer.Option(help="Validating webhook HTTPS port.")] = None,
    webhook: Annotated[
        bool | None, typer.Option("--webhook/--no-webhook", help="Serve the webhook.")
    ] = None,
    debounce_quiet: DebounceQuietFlag = None,
    debounce_max: DebounceMaxFlag = None,
    ports_file: PortsFileFlag = None,
    log_level: LogLevelFlag = None,
    quiet: QuietFlag = False,
) -> None:
    """Run Galley: watch, validate and serve Istio config over MCP."""
    settings = settings_from_flags(
        GalleySettings,
        config_dir=config_dir,
        host=host,
        mcp_port=mcp_port,
        http_port=http_port,
        webhook_port=webhook_port,
        webhook_enabled=webhook,
        debounce_quiet_s=debounce_quiet,
        debounce_max_s=debounce_max,
        ports_file=ports_file,
        log_level=log_level,
    )
    console = Console()
    run_in_foreground(
        name="galley",
        settings=settings,
        build=build_galley,
        view=lambda galley: None if quiet else _fingerprint(galley.store.status()),
        render=lambda galley: _render(console, galley, galley.store.status()),
    )


def _fingerprint(status: StoreStatus) -> object | None:
    """What the view shows changes when this does; None until the first full read."""
    return (tuple(status.versions.items()), status.issues) if status.synced else None


def _render(console: Console, galley: Galley, status: StoreStatus) -> None:
    counts: dict[str, int] = {}
    for served in status.objects:
        counts[served.collection] = counts.get(served.collection, 0) + 1
    table = Table(
        title=f"Galley serves {len(status.objects)} objects from {galley.settings.config_dir}",
        title_justify="left",
    )
    table.add_column("collection")
    table.add_column("objects", justify="right")
    table.add_column("version")
    for collection, version in sorted(status.versions.items()):
        table.add_row(collection, str(counts.get(collection, 0)), version)
    console.print(table)
    if status.issues:
        console.print(
            f"[bold red]{len(status.issues)} problem(s); rejected objects are not "
            "served (their last good version is):[/]"
        )
        for issue in status.issues:
            console.print(f"  {issue}", markup=False, highlight=False)
    else:
        console.print("[green]no problems[/]")
    ports = galley.ports()
    console.print(
        f"MCP on {galley.settings.host}:{ports['mcp']}, admin on "
        f"http://{galley.settings.host}:{ports['http']}/debug/configz"
        + (
            f", webhook on https://{galley.settings.host}:{ports['webhook']}/validate"
            if "webhook" in ports
            else ""
        )
        + ". Edit files to see changes; Ctrl-C stops."
    )
