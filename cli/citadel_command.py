"""``splitmesh citadel``: run Citadel in the foreground; ``splitmesh citadel mint-token``.

Flags override ``SPLITMESH_CITADEL_*`` environment variables. After start-up Citadel
prints its root (subject, fingerprint, expiry), where it listens and how to mint a token,
then serves until Ctrl-C or SIGTERM.

``mint-token`` prints one single-use workload token (an EdDSA JWT) for
``--namespace``/``--service-account``, signed with the launcher's key (by default
``<state_dir>/token-signing.key``, created 0600 if missing, the key Citadel verifies with
when no ``token_public_key`` is set). Register with ``app.add_typer(citadel_app,
name="citadel")``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
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
from services.citadel.adapters.key_files import load_or_create_token_key
from services.citadel.app import Citadel, build_citadel
from services.citadel.core.errors import CaConfigError
from services.citadel.core.token import mint_token
from services.citadel.settings import CitadelSettings
from shared.contracts.ca.spiffe import SpiffeId
from shared.settings import SettingsError

citadel_app = typer.Typer(
    help="Citadel, the mesh certificate authority.",
    add_completion=False,
    pretty_exceptions_enable=False,
)


@citadel_app.callback(invoke_without_command=True)
def citadel_command(
    ctx: typer.Context,
    host: HostFlag = None,
    grpc_port: Annotated[int | None, typer.Option(help="CSR gRPC port (0: any free).")] = None,
    http_port: HttpPortFlag = None,
    trust_domain: Annotated[str | None, typer.Option(help="SPIFFE trust domain.")] = None,
    state_dir: Annotated[
        Path | None, typer.Option(help="Where the self-signed root and token key live.")
    ] = None,
    plugged_ca_dir: Annotated[
        Path | None, typer.Option(help="Istio cacerts directory of a plugged-in CA.")
    ] = None,
    cert_ttl: Annotated[
        int | None, typer.Option(help="Default workload certificate lifetime (s).")
    ] = None,
    ports_file: PortsFileFlag = None,
    log_level: LogLevelFlag = None,
) -> None:
    """Run Citadel: sign workload CSRs for the identity each caller proves."""
    if ctx.invoked_subcommand is not None:
        return
    settings = settings_from_flags(
        CitadelSettings,
        host=host,
        grpc_port=grpc_port,
        http_port=http_port,
        trust_domain=trust_domain,
        state_dir=state_dir,
        plugged_ca_dir=plugged_ca_dir,
        workload_cert_ttl_s=cert_ttl,
        ports_file=ports_file,
        log_level=log_level,
    )
    console = Console()
    run_in_foreground(
        name="citadel",
        settings=settings,
        build=build_citadel,
        view=lambda citadel: True if _serving(citadel) else None,
        render=lambda citadel: _render(console, citadel),
    )


@citadel_app.command("mint-token")
def mint_token_command(
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="Workload namespace.")],
    service_account: Annotated[
        str, typer.Option("--service-account", "-s", help="Workload service account.")
    ],
    ttl: Annotated[int, typer.Option(help="Token lifetime in seconds.")] = 600,
    trust_domain: Annotated[str | None, typer.Option(help="SPIFFE trust domain.")] = None,
    signing_key: Annotated[
        Path | None, typer.Option(help="Ed25519 signing key (default <state_dir>/token-...).")
    ] = None,
) -> None:
    """Print a single-use token proving a workload identity to Citadel."""
    try:
        settings = CitadelSettings.from_env(os.environ).with_overrides(trust_domain=trust_domain)
        identity = SpiffeId(settings.trust_domain, namespace, service_account)
    except (SettingsError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    if ttl <= 0 or ttl > settings.max_token_ttl_s:
        raise typer.BadParameter(f"--ttl must be in 1..{settings.max_token_ttl_s}")
    key_path = signing_key or settings.token_signing_key
    if not key_path.exists():
        typer.echo(f"creating token signing key {key_path} (0600)", err=True)
    try:
        key = load_or_create_token_key(key_path)
    except (OSError, CaConfigError) as exc:
        typer.echo(f"citadel mint-token: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(mint_token(key, identity, ttl_s=ttl, now=time.time()))


def _serving(citadel: Citadel) -> bool:
    try:
        citadel.ports()
    except RuntimeError:
        return False
    return True


def _render(console: Console, citadel: Citadel) -> None:
    status = citadel.ca.root_status()
    root, rotation = status["root"], status["rotation"]
    console.print(f"[bold]Citadel[/] ({status['mode']} CA) root {root['subject']}")
    console.print(f"  fingerprint {root['fingerprint_sha256']}, expires {root['not_after']}")
    if rotation["in_progress"]:
        console.print(f"  [yellow]root rotation in progress: {rotation['phase']}[/]")
    ports, host = citadel.ports(), citadel.settings.host
    console.print(
        f"CSR API on {host}:{ports['grpc']}, admin on http://{host}:{ports['http']}/debug/root. "
        "Mint a token with `splitmesh citadel mint-token -n NS -s SA`; Ctrl-C stops."
    )
