"""The launcher's commands as a user runs them: up, status, proxy-config, demo, down.

A detached mesh of the demo shop (on this test's config and free ports) is brought up with
``up --detach``, inspected, driven by ``demo`` and stopped with ``down``; a foreground
``up`` is stopped with Ctrl-C. Afterwards no process of the mesh may be left.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cli.launcher.state import read_state
from cli.main import app
from tests.e2e.conftest import (
    REPO,
    catalog_config,
    free_ports,
    ratings_config,
    services_config,
    shop_workloads,
)
from tests.integration.sidecar.procfs import alive, children

pytestmark = pytest.mark.slow
WAIT_S = 60.0


def shop_files(root: Path, names: list[str]) -> tuple[Path, Path]:
    """A config directory and a launcher file for the shop workloads ``names``."""
    config = root / "config"
    config.mkdir()
    every = ["storefront-v1", "catalog-v1", "catalog-v2", "catalog-v3", "ratings-v1"]
    ports = dict(zip(every, free_ports(len(every)), strict=True))
    (config / "services.yaml").write_text(services_config(ports))
    (config / "catalog.yaml").write_text(catalog_config())
    (config / "ratings.yaml").write_text(ratings_config())
    workloads = shop_workloads({name: ports[name] for name in names})
    document = {
        "workdir": str(REPO),
        "workloads": [
            w.model_dump(by_alias=True, exclude_none=True, mode="json") for w in workloads.workloads
        ],
    }
    launcher_file = root / "workloads.yaml"
    launcher_file.write_text(yaml.safe_dump(document))
    return config, launcher_file


def test_detached_mesh_is_inspected_driven_and_stopped(tmp_path: Path) -> None:
    names = ["storefront-v1", "catalog-v1", "catalog-v2", "catalog-v3", "ratings-v1"]
    config, workloads = shop_files(tmp_path, names)
    run_dir = tmp_path / "run"
    runner = CliRunner()
    where = ["--run-dir", str(run_dir)]
    up = runner.invoke(
        app, ["up", "--detach", "--config", str(config), "--workloads", str(workloads), *where]
    )
    assert up.exit_code == 0, up.output + _log(run_dir)
    state = read_state(run_dir)
    assert state is not None and state.status == "running"
    pids = [state.launcher_pid]
    for component in state.components:
        for pid in (component.pid, component.app_pid):
            if pid is not None:
                pids += [pid, *children(pid)]
    try:
        status = runner.invoke(app, ["status", *where])
        assert status.exit_code == 0, status.output
        for name in names:
            assert name in status.output
        assert "yes" in status.output  # connected and in sync

        routes = runner.invoke(app, ["proxy-config", "storefront-v1", "routes", *where])
        assert routes.exit_code == 0, routes.output
        assert "outbound_http" in routes.output
        assert "x-user" in routes.output

        endpoints = runner.invoke(app, ["proxy-config", "storefront-v1", "endpoints", *where])
        assert "127.0.0.1" in endpoints.output

        missing = runner.invoke(app, ["proxy-config", "nobody", *where])
        assert missing.exit_code == 1
        assert "catalog-v1" in missing.output

        demo = runner.invoke(app, ["demo", "--requests", "200", *where])
        assert demo.exit_code == 0, demo.output
        assert "Canary split" in demo.output
        assert "70 %" in demo.output
        assert "splitmesh down" in demo.output
    finally:
        down = runner.invoke(app, ["down", *where])
    assert down.exit_code == 0, down.output
    assert read_state(run_dir) is None
    assert [pid for pid in pids if alive(pid)] == []
    assert runner.invoke(app, ["status", *where]).exit_code == 1


def test_foreground_mesh_stops_on_ctrl_c_without_orphans(tmp_path: Path) -> None:
    config, workloads = shop_files(tmp_path, ["catalog-v1"])
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "cli.launcher", "--config", str(config)]
    command += ["--workloads", str(workloads), "--run-dir", str(run_dir)]
    launcher = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + WAIT_S
        while (state := read_state(run_dir)) is None or state.status != "running":
            assert launcher.poll() is None, launcher.communicate()[0]
            assert time.monotonic() < deadline, "the mesh did not come up"
            time.sleep(0.1)
        pids = [pid for c in state.components for pid in (c.pid, c.app_pid) if pid is not None]
        pids += [child for pid in pids for child in children(pid)]
        launcher.send_signal(signal.SIGINT)
        output, _ = launcher.communicate(timeout=WAIT_S)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 0, output
    assert "stopping" in output
    assert [pid for pid in pids if alive(pid)] == []
    assert read_state(run_dir) is None


def _log(run_dir: Path) -> str:
    try:
        return (run_dir / "launcher.log").read_text()
    except OSError:
        return ""
