"""The ``splitmesh`` command: validate and analyze config, run the services.

Every subcommand has ``--help``. Exit status: 0 when all went well, 1 when the input
had problems (one line per problem on stdout), 2 for usage errors (typer's default).
"""

from __future__ import annotations

import typer

from cli.citadel_command import citadel_app
from cli.config_commands import analyze_command, validate_command
from cli.galley_command import galley_command
from cli.launcher.commands import (
    demo_command,
    down_command,
    proxy_config_command,
    status_command,
    up_command,
)
from cli.mixer_command import mixer_command
from cli.pilot_command import pilot_command

app = typer.Typer(
    name="splitmesh",
    help="A service-mesh control plane built the way Istio 1.4 was.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("validate")(validate_command)
app.command("analyze")(analyze_command)
app.command("galley")(galley_command)
app.command("pilot")(pilot_command)
app.command("mixer")(mixer_command)
app.add_typer(citadel_app, name="citadel")
app.command("up")(up_command)
app.command("down")(down_command)
app.command("status")(status_command)
app.command("proxy-config")(proxy_config_command)
app.command("demo")(demo_command)


def main() -> None:
    """Console-script entry point."""
    app()
