"""``python -m sidecar`` against a real Pilot: Envoy configured, supervised, never orphaned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.integration.sidecar.conftest import NODE_ID, AgentProcess, ControlPlane, wait_for
from tests.integration.sidecar.procfs import alive

StartAgent = Callable[..., AgentProcess]


def listeners(agent: AgentProcess) -> dict[str, int]:
    """Envoy's active listeners: name → bound port (warming ones are not serving yet)."""
    dump = httpx.get(f"http://127.0.0.1:{agent.ports['admin']}/config_dump", timeout=5).json()
    found: dict[str, int] = {}
    for section in dump["configs"]:
        for entry in section.get("dynamic_listeners", []):
            if "active_state" not in entry:
                continue
            listener: dict[str, Any] = entry["active_state"]["listener"]
            found[listener["name"]] = listener["address"]["socket_address"]["port_value"]
    return found


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_agent_runs_envoy_configured_by_pilot(
    control_plane: ControlPlane, start_agent: StartAgent, delta: bool
) -> None:
    agent = start_agent(delta=delta)
    assert listeners(agent) == {
        f"inbound|{control_plane.endpoint_port}": control_plane.endpoint_port,
        "outbound_http": agent.ports["outbound"],
    }
    wait_for(
        lambda: NODE_ID in (sync := control_plane.sync()) and sync[NODE_ID].in_sync,
        "Pilot never saw the proxy in sync",
    )
    assert control_plane.sync()[NODE_ID].protocol == ("delta" if delta else "sotw")


def test_sigterm_drains_and_stops_envoy_and_cleans_up(start_agent: StartAgent) -> None:
    agent = start_agent()
    (envoy,) = agent.envoy_pids()
    assert agent.process.stop() == 0
    assert not alive(envoy)
    assert not agent.ports_file.exists()
    assert not (agent.run_dir / "envoy-bootstrap.json").exists()


def test_killed_agent_takes_its_envoy_with_it(start_agent: StartAgent) -> None:
    agent = start_agent()
    (envoy,) = agent.envoy_pids()
    agent.process.signal(signal.SIGKILL)
    wait_for(lambda: not alive(envoy), "Envoy outlived its killed agent")


def test_killed_envoy_is_restarted_and_resyncs(
    control_plane: ControlPlane, start_agent: StartAgent
) -> None:
    agent = start_agent()
    (first,) = agent.envoy_pids()
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: agent.envoy_pids() not in ([], [first]), "Envoy was not restarted")

    def serving_again() -> bool:
        try:
            return "outbound_http" in listeners(agent)
        except httpx.HTTPError:
            return False

    wait_for(serving_again, "the new Envoy never got its listeners from Pilot")
    wait_for(
        lambda: NODE_ID in (sync := control_plane.sync()) and sync[NODE_ID].in_sync,
        "Pilot never saw the restarted proxy in sync",
    )


def test_bad_settings_exit_2_naming_the_variable() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sidecar"],
        env={**os.environ, "SPLITMESH_SIDECAR_WORKLOAD_NAME": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "SPLITMESH_SIDECAR_WORKLOAD_NAME" in result.stderr
