"""``splitmesh pilot``: run Pilot in the foreground with a live view of its proxies.

Flags override ``SPLITMESH_PILOT_*`` environment variables. Once Pilot has synced its
config from Galley it prints the config version and every connected proxy (protocol,
version, in sync or not, NACKs), then prints again each time that changes, until Ctrl-C or
SIGTERM.
"""

from __future__ import annotations

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
from services.pilot.app import Pilot, build_pilot
from services.pilot.core.ads.connection import ConnectionStatus
from services.pilot.core.ads.server import DiscoveryStatus
from services.pilot.settings import PilotSettings


def pilot_command(
    galley_address: Annotated[
        str | None, typer.Option(help="Galley's MCP address (host:port).")
    ] = None,
    host: HostFlag = None,
    grpc_port: Annotated[int | None, typer.Option(help="xDS (ADS) gRPC port (0: any).")] = None,
    http_port: HttpPortFlag = None,
    debounce_quiet: DebounceQuietFlag = None,
    debounce_max: DebounceMaxFlag = None,
    push_concurrency: Annotated[
        int | None, typer.Option(help="Proxy configs generated at the same time.")
    ] = None,
    send_concurrency: Annotated[
        int | None, typer.Option(help="xDS responses written at the same time, all streams.")
    ] = None,
    ports_file: PortsFileFlag = None,
    log_level: LogLevelFlag = None,
    quiet: QuietFlag = False,
) -> None:
    """Run Pilot: follow Galley's config and serve it to Envoy over xDS."""
    settings = settings_from_flags(
        PilotSettings,
        galley_address=galley_address,
        host=host,
        grpc_port=grpc_port,
        http_port=http_port,
        debounce_quiet_s=debounce_quiet,
        debounce_max_s=debounce_max,
        push_concurrency=push_concurrency,
        send_concurrency=send_concurrency,
        ports_file=ports_file,
        log_level=log_level,
    )
    console = Console()
    run_in_foreground(
        name="pilot",
        settings=settings,
        build=build_pilot,
        view=lambda pilot: None if quiet else _fingerprint(pilot),
        render=lambda pilot: _render(console, pilot, pilot.discovery.status()),
    )


def _fingerprint(pilot: Pilot) -> object | None:
    """Changes when the config version or any proxy's sync state changes."""
    if not pilot.store.synced:
        return None
    status = pilot.discovery.status()
    return (
        status.version,
        tuple((c.id, c.version, c.in_sync, _nacks(c)) for c in status.connections),
    )


def _nacks(connection: ConnectionStatus) -> int:
    return sum(watch.nacks for watch in connection.watches.values())


def _render(console: Console, pilot: Pilot, status: DiscoveryStatus) -> None:
    table = Table(
        title=f"Pilot serves config version {status.version} to {len(status.connections)} proxies",
        title_justify="left",
    )
    for column in ("proxy", "protocol", "version", "in sync", "NACKs", "last NACK"):
        table.add_column(column)
    for connection in status.connections:
        nacks = [w.last_nack for w in connection.watches.values() if w.last_nack is not None]
        table.add_row(
            connection.proxy_id,
            connection.protocol,
            connection.version or "-",
            "yes" if connection.in_sync else "no",
            str(_nacks(connection)),
            nacks[-1].message if nacks else "",
        )
    console.print(table)
    ports = pilot.ports()
    console.print(
        f"xDS on {pilot.settings.host}:{ports['grpc']}, admin on "
        f"http://{pilot.settings.host}:{ports['http']}/debug/syncz; Ctrl-C stops."
    )
