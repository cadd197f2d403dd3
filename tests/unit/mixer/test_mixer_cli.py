"""``splitmesh mixer`` flags: bad values are usage errors naming the setting."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from cli.mixer_command import mixer_command


def test_an_unknown_role_is_a_usage_error() -> None:
    app = typer.Typer()
    app.command()(mixer_command)
    result = CliRunner().invoke(app, ["--role", "both", "--quiet"])
    assert result.exit_code == 2
    assert "role" in result.output
