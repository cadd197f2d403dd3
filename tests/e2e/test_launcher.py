"""The launcher's commands as a user runs them: up, status, proxy-config, demo, down.

A detached mesh of the demo shop (on this test's config and free ports, with the demo's
Mixer rules from ``examples/mesh`` and a MeshConfig naming Mixer on a free port) is
brought up with ``up --detach`` — Redis, Galley, Citadel, Mixer, Pilot, the workloads —,
inspected, driven by ``demo`` (routing, then Mixer's denial, quota and metrics) and
stopped with ``down``; a foreground ``up`` is stopped with Ctrl-C. Afterwards no process
of the mesh may be left, Redis and Envoy included.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cli.launcher.ports import PortPicker
from cli.launcher.state import read_state
from cli.main import app
from tests.e2e.conftest import (
    CATALOG,
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
    """A config directory and a launcher file for the shop workloads ``names``.

    Every endpoint is marked as running a sidecar, so with auto mTLS (the MeshConfig's
    default here) sidecars talk mutual TLS with certificates from the launcher's Citadel.
    """
    config = root / "config"
    config.mkdir()
    every = ["storefront-v1", "catalog-v1", "catalog-v2", "catalog-v3", "ratings-v1"]
    ports = dict(zip(every, free_ports(len(every)), strict=True))
    (config / "services.yaml").write_text(services_config(ports, sidecar_tls=True))
    (config / "catalog.yaml").write_text(catalog_config())
    (config / "ratings.yaml").write_text(ratings_config())
    (config / "mesh.yaml").write_text(mesh_config(PortPicker(reserved=frozenset(ports.values()))))
    shutil.copy(REPO / "examples" / "mesh" / "mixer.yaml", config / "mixer.yaml")
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


def mesh_config(picker: PortPicker) -> str:
    """Mixer mode on, with Mixer on a port nobody else picks."""
    port = picker.pick()
    return f"""\
apiVersion: mesh.istio.io/v1alpha1
kind: MeshConfig
metadata: {{name: mesh, namespace: istio-system}}
spec:
  enableAutoMtls: true
  disablePolicyChecks: false
  mixerCheckServer: 127.0.0.1:{port}
  mixerReportServer: 127.0.0.1:{port}
  reportBatchMaxTime: 100ms
"""


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
        for name in ["redis", "galley", "citadel", "mixer", "pilot", *names]:
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

        demo = runner.invoke(app, ["demo", "--requests", "200", *where], env={"COLUMNS": "250"})
        assert demo.exit_code == 0, demo.output
        lines = demo.output.splitlines()
        assert "Canary split" in demo.output
        assert "70 %" in demo.output
        denial = _line(lines, "Policy check (Mixer)")
        assert "x-blocked: true got 403" in denial and "blocked by policy" in denial
        quota = _line(lines, "Quota (Mixer memquota)")
        assert "5 allowed, then 429" in quota, quota
        assert "Live metrics: istio_requests_total" in demo.output
        assert re.search(rf"{CATALOG}\s+│\s+429\s+│\s+3\s", demo.output), demo.output
        assert re.search(rf"{CATALOG}\s+│\s+403\s+│\s+1\s", demo.output), demo.output
        mtls = _line(lines, "Mutual TLS")
        assert re.search(r"completed [1-9]\d* TLS handshakes", mtls), mtls
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


def _line(lines: list[str], start: str) -> str:
    found = [line for line in lines if line.startswith(start)]
    assert found, f"no line starting {start!r} in:\n" + "\n".join(lines)
    return found[0]


def _log(run_dir: Path) -> str:
    try:
        return (run_dir / "launcher.log").read_text()
    except OSError:
        return ""
