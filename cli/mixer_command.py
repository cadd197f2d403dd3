"""``splitmesh mixer``: run Mixer in the foreground and show each config version it takes.

Flags override ``SPLITMESH_MIXER_*`` environment variables. ``--role`` picks what the
process serves, like Istio 1.4's two deployments: ``policy`` (ext_authz Check and RLS
quota), ``telemetry`` (ALS reports) or ``all``. After start-up it prints where it
listens, then a line per config version (rules, policies, problems), until Ctrl-C or
SIGTERM.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from cli.service_runner import (
    HostFlag,
    HttpPortFlag,
    LogLevelFlag,
    PortsFileFlag,
    run_in_foreground,
    settings_from_flags,
)
from services.mixer.app import Mixer, build_mixer
from services.mixer.settings import MixerSettings


def mixer_command(
    role: Annotated[
        str | None, typer.Option(help="What to serve: policy, telemetry or all.")
    ] = None,
    galley_address: Annotated[
        str | None, typer.Option(help="Galley's MCP address (host:port).")
    ] = None,
    host: HostFlag = None,
    grpc_port: Annotated[
        int | None, typer.Option(help="ext_authz, RLS and ALS gRPC port (0: any free port).")
    ] = None,
    http_port: HttpPortFlag = None,
    redis_url: Annotated[
        str | None, typer.Option(help="Redis for every redisquota handler (redis://host:port).")
    ] = None,
    check_fail_open: Annotated[
        bool | None,
        typer.Option(
            "--check-fail-open/--check-fail-closed",
            help="When a rule cannot be evaluated (default: MeshConfig policyCheckFailOpen).",
        ),
    ] = None,
    quota_fail_open: Annotated[
        bool | None,
        typer.Option("--quota-fail-open/--quota-fail-closed", help="When the quota store fails."),
    ] = None,
    quota_timeout: Annotated[
        float | None, typer.Option(help="Longest a quota decision waits for Redis (s).")
    ] = None,
    load_shed_budget_ms: Annotated[
        float | None, typer.Option(help="Latency budget; over it calls fail UNAVAILABLE (0: off).")
    ] = None,
    ports_file: PortsFileFlag = None,
    log_level: LogLevelFlag = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No config lines; logs only.")] = False,
) -> None:
    """Run Mixer: policy checks, quotas and telemetry for Envoy sidecars."""
    settings = settings_from_flags(
        MixerSettings,
        role=role,
        galley_address=galley_address,
        host=host,
        grpc_port=grpc_port,
        http_port=http_port,
        redis_url=redis_url,
        check_fail_open=check_fail_open,
        quota_fail_open=quota_fail_open,
        quota_timeout_s=quota_timeout,
        load_shed_budget_ms=load_shed_budget_ms,
        ports_file=ports_file,
        log_level=log_level,
    )
    console = Console()
    announced: list[bool] = []
    run_in_foreground(
        name=f"mixer-{settings.role}",
        settings=settings,
        build=build_mixer,
        view=lambda mixer: None if quiet else _fingerprint(mixer),
        render=lambda mixer: _render(console, mixer, announced),
    )


def _fingerprint(mixer: Mixer) -> object | None:
    """The listening state and, once synced from Galley, the config version."""
    try:
        mixer.ports()
    except RuntimeError:
        return None  # not listening yet
    return mixer.runtime.status().version if mixer.feed.has_synced() else "listening"


def _render(console: Console, mixer: Mixer, announced: list[bool]) -> None:
    if not announced:
        announced.append(_announce(console, mixer))
    if not mixer.feed.has_synced():
        return
    status = mixer.runtime.status()
    rules = ", ".join(f"{count} {kind}" for kind, count in status.rules.items())
    console.print(
        f"config {status.version}: rules {rules}; "
        f"{status.authorization_policies} authorization policies; "
        f"fail {'open' if status.fail_open else 'closed'}"
    )
    for issue in status.issues:
        console.print(f"  [red]problem:[/] {issue}", highlight=False)


def _announce(console: Console, mixer: Mixer) -> bool:
    try:
        ports = mixer.ports()
    except RuntimeError:
        return False  # not listening yet
    host = mixer.settings.host
    console.print(
        f"Mixer ({mixer.settings.role}) serves gRPC on {host}:{ports['grpc']} and admin on "
        f"http://{host}:{ports['http']}/debug/configz, following Galley at "
        f"{mixer.settings.galley_address}. Ctrl-C stops."
    )
    return True
