"""``python -m cli.launcher``: ``splitmesh up`` in the foreground, without the CLI around it.

This is what ``splitmesh up --detach`` runs in a new session; it takes the same options
(except ``--detach``) and stops the mesh on SIGTERM or SIGINT.
"""

from __future__ import annotations

import typer

from cli.launcher.commands import up_command


def main() -> None:
    """Run ``up_command`` as a standalone command."""
    typer.run(up_command)


if __name__ == "__main__":
    main()
