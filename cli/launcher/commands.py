"""The launcher's commands: ``splitmesh up``, ``down``, ``status``, ``proxy-config``, ``demo``.

Each is a typer function (registered in ``cli/main.py``). They work on a run directory
(``.run`` by default) whose ``state.json`` records the running mesh. Exit status 1 when
the mesh cannot be brought up or down or is not running; 2 for bad arguments.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, NoReturn

import httpx
import typer
from rich.console import Console

from cli.launcher.demo import DemoError, run_demo
from cli.launcher.mesh import MeshOptions
from cli.launcher.run import LauncherError, run_foreground, start_detached, stop_mesh
from cli.launcher.state import MeshState, StateError, read_state
from cli.launcher.views import Section, config_section, proxy_config_table, status_tables
from cli.launcher.workloads import WorkloadsError, load_workloads

_ADMIN_TIMEOUT_S = 5.0

ConfigOption = Annotated[
    Path, typer.Option("--config", help="Directory of Istio YAML for Galley to serve.")
]
WorkloadsOption = Annotated[
    Path, typer.Option("--workloads", help="Launcher file naming the workloads to start.")
]
RunDirOption = Annotated[Path, typer.Option("--run-dir", help="Where logs and state.json go.")]
DeltaOption = Annotated[bool, typer.Option("--delta", help="Sidecars use incremental (delta) xDS.")]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", help="Seconds each start-up step may take.")
]
_DEFAULT_CONFIG = Path("examples/mesh")
_DEFAULT_WORKLOADS = Path("examples/apps/workloads.yaml")
_DEFAULT_RUN_DIR = Path(".run")


def up_command(
    config: ConfigOption = _DEFAULT_CONFIG,
    workloads: WorkloadsOption = _DEFAULT_WORKLOADS,
    run_dir: RunDirOption = _DEFAULT_RUN_DIR,
    detach: Annotated[
        bool, typer.Option("--detach", help="Leave the mesh running and return.")
    ] = False,
    delta: DeltaOption = False,
    timeout: TimeoutOption = 60.0,
) -> None:
    """Start Redis, Galley, Citadel, Mixer, Pilot and the workloads (each app with its sidecar)."""
    console = Console(log_path=False)
    try:
        if detach:
            state = _up_detached(config, workloads, run_dir, delta=delta, timeout=timeout)
            for table in status_tables(state):
                console.print(table)
            console.print("The mesh runs in the background; `splitmesh down` stops it.")
            return
        options = MeshOptions(
            config_dir=_directory(config).resolve(),
            workloads=load_workloads(workloads),
            run_dir=run_dir.resolve(),
            delta=delta,
            start_timeout_s=timeout,
            citadel=True,
            mixer=True,
            redis=True,
        )
        console.print(f"logs in {options.run_dir / 'logs'}; Ctrl-C stops the mesh")
        run_foreground(options, console)
    except (LauncherError, WorkloadsError, StateError) as exc:
        _fail(console, exc)


def down_command(run_dir: RunDirOption = _DEFAULT_RUN_DIR) -> None:
    """Stop a mesh started with `splitmesh up --detach`."""
    console = Console(log_path=False)
    try:
        state = stop_mesh(run_dir)
    except (LauncherError, StateError) as exc:
        _fail(console, exc)
    if state is None:
        console.print(f"no mesh is running from {run_dir}")
    else:
        console.print(f"stopped the mesh ({len(state.components)} components)")


def status_command(run_dir: RunDirOption = _DEFAULT_RUN_DIR) -> None:
    """Show the mesh's processes, its proxies' sync state and the config versions."""
    console = Console(log_path=False)
    state = _running(console, run_dir)
    for table in status_tables(state):
        console.print(table)


def proxy_config_command(
    workload: Annotated[str, typer.Argument(help="Workload name (see `splitmesh status`).")],
    section: Annotated[Section, typer.Argument(help="What to show.")] = Section.CLUSTERS,
    raw: Annotated[bool, typer.Option("--json", help="Print Envoy's JSON instead.")] = False,
    run_dir: RunDirOption = _DEFAULT_RUN_DIR,
) -> None:
    """Show what one sidecar's Envoy holds, from its admin interface."""
    console = Console(log_path=False)
    state = _running(console, run_dir)
    component = state.component(workload)
    if component is None or "admin" not in component.ports:
        names = ", ".join(c.name for c in state.components if "admin" in c.ports)
        _fail(console, f"no workload {workload!r}; workloads: {names}")
    admin = f"http://127.0.0.1:{component.ports['admin']}"
    try:
        dump = httpx.get(f"{admin}/config_dump", timeout=_ADMIN_TIMEOUT_S).json()
        clusters = httpx.get(f"{admin}/clusters?format=json", timeout=_ADMIN_TIMEOUT_S).json()
    except (httpx.HTTPError, ValueError) as exc:
        _fail(console, f"{workload}'s Envoy admin at {admin} does not answer: {exc}")
    if raw:
        shown = clusters if section is Section.ENDPOINTS else config_section(dump, section)
        console.print_json(json.dumps(shown))
        return
    console.print(proxy_config_table(workload, section, dump, clusters))


def demo_command(
    requests: Annotated[int, typer.Option(help="Requests for the canary split.", min=100)] = 1000,
    config: ConfigOption = _DEFAULT_CONFIG,
    workloads: WorkloadsOption = _DEFAULT_WORKLOADS,
    run_dir: RunDirOption = _DEFAULT_RUN_DIR,
    delta: DeltaOption = False,
    timeout: TimeoutOption = 60.0,
) -> None:
    """Bring the demo mesh up (detached) unless it runs, send traffic, show the routing."""
    console = Console(log_path=False)
    try:
        state = read_state(run_dir)
        if state is None or state.status != "running" or not state.launcher_alive():
            state = _up_detached(config, workloads, run_dir, delta=delta, timeout=timeout)
        run_demo(state, console, requests=requests)
    except (LauncherError, WorkloadsError, StateError, DemoError, httpx.HTTPError) as exc:
        _fail(console, exc)


def _up_detached(
    config: Path, workloads: Path, run_dir: Path, *, delta: bool, timeout: float
) -> MeshState:
    load_workloads(workloads)  # fail here, not in the background
    args = [
        "--config",
        str(_directory(config).resolve()),
        "--workloads",
        str(workloads.resolve()),
        "--run-dir",
        str(run_dir.resolve()),
        "--timeout",
        str(timeout),
        *(["--delta"] if delta else []),
    ]
    return start_detached(
        args, run_dir.resolve(), Console(stderr=True, log_path=False), timeout * 4
    )


def _directory(path: Path) -> Path:
    if not path.is_dir():
        raise typer.BadParameter(f"{path} is not a directory (run from the repository root?)")
    return path


def _running(console: Console, run_dir: Path) -> MeshState:
    try:
        state = read_state(run_dir)
    except StateError as exc:
        _fail(console, exc)
    if state is None or not state.launcher_alive():
        _fail(console, f"no mesh is running from {run_dir}; start one with `splitmesh up`")
    return state


def _fail(console: Console, problem: object) -> NoReturn:
    console.print(f"[red]{problem}[/]", highlight=False)
    raise typer.Exit(1)
