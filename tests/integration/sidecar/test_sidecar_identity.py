"""``python -m sidecar`` with a real Citadel: Envoy serves the workload's SPIFFE certificate.

The agent's settings name Citadel and a token file (what the launcher writes); Pilot sees
the identity flag and gives the inbound listener mutual TLS (PERMISSIVE by default), so
Envoy asks the agent's SDS server for the certificate; the private key never leaves the
agent except over that 0600 Unix socket.
"""

from __future__ import annotations

import datetime
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.citadel.core.token import mint_token
from shared.contracts.ca.spiffe import SpiffeId
from tests.integration.citadel.conftest import CitadelProcess
from tests.integration.sidecar.conftest import NODE_ID, AgentProcess, ControlPlane, wait_for

IDENTITY = SpiffeId("cluster.local", "test", "echo")


@pytest.fixture
def citadel(tmp_path: Path) -> Iterator[CitadelProcess]:
    process = CitadelProcess(workdir=tmp_path / "citadel", env={})
    process.start()
    yield process
    process.stop()


def held_certificates(agent: AgentProcess) -> list[dict[str, Any]]:
    """The leaf certificates Envoy holds (admin ``/certs``)."""
    response = httpx.get(f"http://127.0.0.1:{agent.ports['admin']}/certs", timeout=5)
    return [
        chain
        for entry in response.json().get("certificates", [])
        for chain in entry.get("cert_chain", [])
    ]


def test_agent_with_citadel_gives_envoy_its_spiffe_certificate(
    control_plane: ControlPlane,
    start_agent: Callable[..., AgentProcess],
    citadel: CitadelProcess,
    tmp_path: Path,
) -> None:
    token_file = tmp_path / "echo.token"
    token_file.write_text(mint_token(citadel.token_key, IDENTITY, ttl_s=300, now=time.time()))
    agent = start_agent(
        env={
            "SPLITMESH_SIDECAR_SERVICE_ACCOUNT": "echo",
            "SPLITMESH_SIDECAR_CITADEL_ADDRESS": citadel.target,
            "SPLITMESH_SIDECAR_CITADEL_TOKEN_FILE": str(token_file),
            "SPLITMESH_SIDECAR_CERT_VALIDITY_S": "600",
        }
    )
    wait_for(lambda: bool(held_certificates(agent)), "Envoy never got a certificate over SDS")
    (leaf,) = held_certificates(agent)
    assert [san["uri"] for san in leaf["subject_alt_names"]] == [str(IDENTITY)]
    expires = datetime.datetime.fromisoformat(leaf["expiration_time"].replace("Z", "+00:00"))
    left = expires - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(minutes=5) < left <= datetime.timedelta(minutes=10)  # as asked
    socket = agent.run_dir / "sds.sock"
    assert stat.S_IMODE(os.stat(socket).st_mode) == 0o600
    wait_for(lambda: control_plane.sync()[NODE_ID].in_sync, "Pilot never saw the proxy in sync")
    assert agent.process.stop() == 0
    assert not socket.exists()
