"""``python -m bench [NAME...] [--quick] [--json OUT]``: run benchmarks, print the figures.

Runs the named benchmarks (all of them by default, in registry order; see
:mod:`bench.registry`), each in a fresh temporary directory that is removed afterwards,
showing progress as it goes. Then prints a table of every figure with its target and
writes a JSON document (command, machine, results, failures) to ``--json``. A figure
that misses its target is reported, not an error. Exit status: 0 when every benchmark
ran, 1 when one failed (the others still run), 2 for an unknown name. Benchmarks start
real processes (Galley) on 127.0.0.1 with free ports; run one bench at a time on a
machine, or the figures disturb each other.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from bench import machine
from bench.registry import Benchmark, RunContext, benchmarks
from bench.report import json_document, results_table
from bench.results import Result


def _parser(known: dict[str, Benchmark]) -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:<22} {bench.summary}" for name, bench in known.items())
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(__doc__ or "").split("\n\n", 1)[1].strip(),
        epilog=f"benchmarks:\n{listing}\n\nFigures and how to read them: docs/PERFORMANCE.md",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: all)")
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes (seconds): checks the harness, not speed"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=Path("bench-results.json"),
        metavar="OUT",
        help="where to write the results as JSON (default: %(default)s)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the benchmarks, print and write the results; the exit status."""
    known = benchmarks()
    parser = _parser(known)
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in known]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(known)}")
    selected = [known[name] for name in args.names or known]
    # Not a terminal (make, CI, a pipe): rich would wrap the table at 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 132)
    described = machine.describe()
    console.print(" ".join(f"[bold]{key}[/] {value}" for key, value in described.items()))
    results: list[Result] = []
    errors: dict[str, str] = {}
    for bench in selected:
        outcome = _run_one(console, bench, quick=args.quick)
        if isinstance(outcome, Result):
            results.append(outcome)
        else:
            errors[bench.name] = outcome
    console.print(results_table(results))
    command = shlex.join(["python", "-m", "bench", *(argv if argv is not None else sys.argv[1:])])
    document = json_document(
        command=command, quick=args.quick, machine=described, results=results, errors=errors
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    console.print(f"results written to {args.json}")
    for name, error in errors.items():
        console.print(f"[red]{name} failed:[/] {error}")
    return 1 if errors else 0


def _run_one(console: Console, bench: Benchmark, *, quick: bool) -> Result | str:
    """Run one benchmark with a spinner; its result, or the error text if it failed."""
    with (
        tempfile.TemporaryDirectory(prefix=f"splitmesh-{bench.name}-") as work,
        console.status(f"{bench.name}: starting") as status,
    ):

        def progress(message: str) -> None:
            status.update(f"{bench.name}: {message}")

        try:
            result = bench.run(RunContext(quick=quick, work_dir=Path(work), progress=progress))
        except Exception as exc:
            console.print(traceback.format_exc(), markup=False, highlight=False)
            return f"{type(exc).__name__}: {exc}"
    console.print(f"[green]✓[/] {bench.name}")
    return result


if __name__ == "__main__":
    sys.exit(main())
