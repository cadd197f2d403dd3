"""``splitmesh validate`` and ``splitmesh analyze``: check Istio YAML without a server.

Both print one line per problem on stdout (``file:line: Kind ns/name: path: message``)
and a summary on stderr; the exit status is 1 when any error was found, else 0
(warnings alone do not fail).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated

import typer

from services.galley.adapters.directory_source import DirectorySourceError, read_file, read_tree
from services.galley.core.analysis import analyze
from services.galley.core.validation import accept
from shared.config import ConfigIssue, ParseResult, Resource, has_errors


def validate_command(
    named: Annotated[
        list[Path] | None,
        typer.Option("-f", "--filename", help="A YAML file to validate (repeatable)."),
    ] = None,
    more: Annotated[
        list[Path] | None,
        typer.Argument(metavar="FILE...", help="More files (so `-f *.yaml` works)."),
    ] = None,
) -> None:
    """Validate Istio YAML files object by object, like Istio's validation webhook."""
    files = [*(named or []), *(more or [])]
    if not files:
        raise typer.BadParameter("name at least one file with -f FILE", param_hint="-f")
    results = [(str(path), read_file(path, source=str(path))) for path in files]
    accepted, issues = _check(results)
    _finish(issues, f"{len(files)} file(s), {len(accepted)} valid object(s)")


def analyze_command(
    directory: Annotated[Path, typer.Argument(help="Directory of Istio YAML (recursive).")],
) -> None:
    """Validate every file below DIRECTORY, then check references across objects."""
    try:
        results = read_tree(directory)
    except DirectorySourceError as exc:
        raise typer.BadParameter(str(exc), param_hint="DIRECTORY") from exc
    accepted, issues = _check(results)
    issues.extend(analyze(accepted))
    _finish(issues, f"{directory}: {len(results)} file(s), {len(accepted)} valid object(s)")


def _check(results: Iterable[tuple[str, ParseResult]]) -> tuple[list[Resource], list[ConfigIssue]]:
    resources: list[Resource] = []
    issues: list[ConfigIssue] = []
    for _, result in results:
        issues.extend(result.issues)
        resources.extend(result.resources)
    accepted, found = accept(resources)
    issues.extend(found)
    return accepted, issues


def _finish(issues: Sequence[ConfigIssue], summary: str) -> None:
    for issue in issues:
        typer.echo(str(issue))
    failed = has_errors(issues)
    verdict = f"{len(issues)} problem(s)" if issues else "no problems"
    typer.echo(f"{summary}; {verdict}", err=True)
    if failed:
        raise typer.Exit(1)
