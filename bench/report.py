"""How ``python -m bench`` shows results: a rich table, and the JSON document it writes.

:func:`results_table` renders figures (value, target, met) benchmark by benchmark;
:func:`json_document` is the file ``--json`` writes: the command, the machine (see
:mod:`bench.machine`), every result and every failure. Pure functions of their inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

from bench.results import Result


def results_table(results: Sequence[Result]) -> Table:
    """One row per figure, grouped by benchmark; targets and whether they are met."""
    table = Table(title="splitmesh benchmarks", title_justify="left")
    for column in ("benchmark", "figure", "value", "target", "met"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for result in results:
        for number, figure in enumerate(result.figures):
            met = {True: "[green]yes[/]", False: "[red]NO[/]", None: ""}[figure.met]
            table.add_row(
                result.benchmark if number == 0 else "",
                figure.name,
                f"{format_value(figure.value)} {figure.unit}",
                "" if figure.target is None else f"{figure.target} {figure.unit}",
                met,
            )
        table.add_section()
    return table


def format_value(value: float) -> str:
    """Three significant figures or so, with thousands separators."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def json_document(
    *,
    command: str,
    quick: bool,
    machine: Mapping[str, str | int | float],
    results: Sequence[Result],
    errors: Mapping[str, str],
) -> dict[str, Any]:
    """The ``--json`` file: command, machine, results, and failures by benchmark."""
    return {
        "command": command,
        "quick": quick,
        "machine": dict(machine),
        "results": [result.to_json() for result in results],
        "errors": dict(errors),
    }
