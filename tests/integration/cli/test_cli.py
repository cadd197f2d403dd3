"""The ``splitmesh`` command and ``python -m services.galley``, run as a user runs them.

Every test starts the installed console script (or the module) as a subprocess and
checks exit status, stdout and stderr: one line per problem, usable ``--help`` on every
command, settings errors that name the setting, and a ``splitmesh galley`` that shows
what it accepted and rejected and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer

from cli.main import app

SPLITMESH = Path(sys.executable).parent / "splitmesh"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
TIMEOUT_S = 60.0
# Wide enough that rich never wraps a message or a setting's name.
WIDE = {"COLUMNS": "300", "NO_COLOR": "1"}


def run(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command),
        capture_output=True,
        text=True,
        env={**os.environ, **WIDE, **(env or {})},
        cwd=cwd,
        timeout=TIMEOUT_S,
        check=False,
    )


def splitmesh(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run([str(SPLITMESH), *args], env=env)


def galley_module(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "services.galley", *args], env=env)


# Two objects, one problem each: weights that sum to 90, and an unknown field.
VIRTUAL_SERVICES = """\
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  http:
    - route:
        - destination: {host: reviews.shop.svc.cluster.local, subset: v1}
          weight: 60
        - destination: {host: reviews.shop.svc.cluster.local, subset: v2}
          weight: 30
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: ratings, namespace: shop}
spec:
  hosts: [ratings.shop.svc.cluster.local]
  http:
    - route:
        - destination: {host: ratings.shop.svc.cluster.local}
      retry: {attempts: 3}
"""

DANGLING_SUBSET = """\
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  http:
    - route:
        - destination: {host: reviews.shop.svc.cluster.local, subset: v9}
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews.shop.svc.cluster.local
  subsets: [{name: v1, labels: {version: v1}}]
"""


def test_validate_accepts_valid_files() -> None:
    files = sorted(str(path) for path in (EXAMPLES / "mesh").glob("*.yaml"))
    assert files
    result = splitmesh("validate", *[arg for path in files for arg in ("-f", path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
    assert f"{len(files)} file(s)" in result.stderr
    assert "no problems" in result.stderr


def test_validate_prints_one_line_per_problem_and_exits_1(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(VIRTUAL_SERVICES)
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: [VirtualService\n")
    missing = tmp_path / "missing.yaml"

    result = splitmesh("validate", "-f", str(routes), "-f", str(broken), "-f", str(missing))

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 4, result.stdout
    assert f"{routes}:13: VirtualService shop/ratings: spec.http[0].retry: unknown field" in lines
    assert (
        f"{routes}:1: VirtualService shop/reviews: spec.http[0].route: "
        "total destination weight 90 != 100"
    ) in lines
    assert f"{missing}: cannot read: No such file or directory" in lines
    assert [line for line in lines if line.startswith(f"{broken}:")] == [
        line for line in lines if line.startswith(f"{broken}:") and ": invalid YAML: " in line
    ]
    assert "4 problem(s)" in result.stderr


def test_analyze_accepts_the_example_mesh() -> None:
    result = splitmesh("analyze", str(EXAMPLES / "mesh"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
    assert "no problems" in result.stderr


def test_analyze_names_a_route_to_a_missing_subset(tmp_path: Path) -> None:
    (tmp_path / "reviews.yaml").write_text(DANGLING_SUBSET)
    assert splitmesh("validate", "-f", str(tmp_path / "reviews.yaml")).returncode == 0

    result = splitmesh("analyze", str(tmp_path))

    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "reviews.yaml:1: VirtualService shop/reviews: "
        "spec.http[0].route[0].destination.subset: subset 'v9' is not defined by any "
        "DestinationRule for host reviews.shop.svc.cluster.local"
    ]


def _command_paths(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path below ``command`` (a click-style command; groups have ``commands``)."""
    yield path
    subcommands: Mapping[str, Any] = getattr(command, "commands", None) or {}
    for name, sub in sorted(subcommands.items()):
        if not sub.hidden:
            yield from _command_paths(sub, (*path, name))


def test_every_command_has_help() -> None:
    paths = list(_command_paths(typer.main.get_command(app)))
    assert ("galley",) in paths
    running = {
        path: subprocess.Popen(
            [str(SPLITMESH), *path, "--help"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **WIDE},
        )
        for path in paths
    }
    for path, process in running.items():
        stdout, stderr = process.communicate(timeout=TIMEOUT_S)
        shown = " ".join(["splitmesh", *path])
        assert process.returncode == 0, f"{shown} --help: {stderr}"
        assert f"Usage: {shown}" in stdout, f"{shown} --help printed:\n{stdout}"


def test_the_galley_module_has_help_listing_its_settings() -> None:
    result = galley_module("--help", env={})
    assert result.returncode == 0, result.stderr
    assert "SPLITMESH_GALLEY_MCP_PORT" in result.stdout
    assert "SPLITMESH_GALLEY_CONFIG_DIR" in result.stdout


@pytest.mark.parametrize(
    ("variable", "value", "setting"),
    [
        ("SPLITMESH_GALLEY_MCP_PORT", "99999", "mcp_port"),
        ("SPLITMESH_GALLEY_MCP_PORT", "ninety", "SPLITMESH_GALLEY_MCP_PORT"),
        ("SPLITMESH_GALLEY_CONFIG_DIR", "/nonexistent/splitmesh", "config_dir"),
    ],
)
def test_an_invalid_setting_fails_at_start_naming_it(
    tmp_path: Path, variable: str, value: str, setting: str
) -> None:
    env = {"SPLITMESH_GALLEY_CONFIG_DIR": str(tmp_path), variable: value}
    result = galley_module(env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("galley: invalid setting ")
    assert setting in result.stderr
    assert value in result.stderr


@pytest.mark.parametrize(
    ("flag", "value", "setting"),
    [("--mcp-port", "99999", "mcp_port"), ("--config-dir", "/nonexistent/x", "config_dir")],
)
def test_an_invalid_galley_flag_fails_at_start_naming_the_setting(
    tmp_path: Path, flag: str, value: str, setting: str
) -> None:
    result = splitmesh("galley", "--config-dir", str(tmp_path), flag, value)
    assert result.returncode == 2
    assert f"invalid setting {setting} " in result.stderr
    assert value in result.stderr


def _wait_for(condition: Callable[[], bool], what: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + TIMEOUT_S / 2
    while not condition():
        assert process.poll() is None, f"splitmesh galley exited ({process.returncode})"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_splitmesh_galley_shows_what_it_serves_and_rejects_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "reviews.yaml").write_text(DANGLING_SUBSET)
    (config / "broken.yaml").write_text("kind: [VirtualService\n")
    ports_file = tmp_path / "ports.json"
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    command = [str(SPLITMESH), "galley", "--config-dir", str(config), "--ports-file"]
    command += [str(ports_file), "--mcp-port", "0", "--http-port", "0", "--webhook-port", "0"]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            command, stdout=stdout, stderr=stderr, env={**os.environ, **WIDE}
        )
    try:
        _wait_for(ports_file.exists, "the ports file", process)
        ports = json.loads(ports_file.read_text())
        assert set(ports) == {"mcp", "http", "webhook"}
        assert httpx.get(f"http://127.0.0.1:{ports['http']}/readyz", timeout=10).status_code == 200
        _wait_for(lambda: "Ctrl-C" in out.read_text(), "the accepted/rejected view", process)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(TIMEOUT_S)

    view = out.read_text()
    assert code == 0, err.read_text()
    assert "Galley serves 2 objects" in view
    served = {
        cells[1]: int(cells[2])
        for line in view.splitlines()
        if len(cells := [cell.strip() for cell in line.split("│")]) > 3 and cells[1]
    }
    assert served["istio/networking/v1alpha3/virtualservices"] == 1
    assert served["istio/networking/v1alpha3/destinationrules"] == 1
    assert "1 problem(s)" in view
    assert re.search(r"^  broken\.yaml:\d+: invalid YAML: ", view, re.MULTILINE), view
    assert not ports_file.exists()
