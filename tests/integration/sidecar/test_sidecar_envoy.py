"""The Envoy supervisor with a real Envoy: live, restarted when killed, stopped cleanly.

These tests run Envoy on a small static bootstrap (a listener answering 200 directly), so
they need no Pilot; the agent against a real Pilot is in ``test_sidecar_agent.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from sidecar.agent import free_port
from sidecar.bootstrap import build_bootstrap, write_bootstrap
from sidecar.envoy_process import EnvoyCommand, EnvoyStartError, EnvoySupervisor, find_envoy
from sidecar.node import InboundPort, WorkloadIdentity
from tests.integration.sidecar.procfs import alive

WAIT_S = 15.0


def static_bootstrap(admin_port: int, listener_port: int) -> dict[str, Any]:
    """Admin plus one listener that answers every request with 200 ``hello``."""
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network."
        "http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "test",
        "route_config": {
            "virtual_hosts": [
                {
                    "name": "all",
                    "domains": ["*"],
                    "routes": [
                        {
                            "match": {"prefix": "/"},
                            "direct_response": {"status": 200, "body": {"inline_string": "hello"}},
                        }
                    ],
                }
            ]
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            }
        ],
    }
    return {
        "admin": {"address": _address(admin_port)},
        "static_resources": {
            "listeners": [
                {
                    "name": "hello",
                    "address": _address(listener_port),
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": manager,
                                }
                            ]
                        }
                    ],
                }
            ]
        },
    }


def _address(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def supervisor_for(tmp_path: Path, config: dict[str, Any], admin_port: int) -> EnvoySupervisor:
    path = write_bootstrap(tmp_path / "envoy.json", config)
    return EnvoySupervisor(
        EnvoyCommand(binary=find_envoy(), config_path=path, drain_time_s=0.1, concurrency=1),
        admin_port=admin_port,
        log_path=tmp_path / "envoy.log",
        ready_timeout_s=WAIT_S,
        backoff_s=0.05,
        stop_grace_s=5.0,
    )


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Wait up to WAIT_S for ``check`` to hold."""
    async with asyncio.timeout(WAIT_S):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)


async def hello(port: int) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5.0) as client:
        return await client.get(f"http://127.0.0.1:{port}/")


async def test_supervised_envoy_serves_until_stopped_and_is_gone_after(tmp_path: Path) -> None:
    admin, listener = free_port(), free_port()
    supervisor = supervisor_for(tmp_path, static_bootstrap(admin, listener), admin)
    await supervisor.start()
    pid = supervisor.pid
    assert pid is not None and await supervisor.live()
    response = await hello(listener)
    assert (response.status_code, response.text) == (200, "hello")
    await supervisor.stop()
    await supervisor.stop()  # idempotent
    assert not alive(pid)
    with pytest.raises(httpx.ConnectError):
        await hello(listener)


async def test_killed_envoy_is_started_again(tmp_path: Path) -> None:
    admin, listener = free_port(), free_port()
    supervisor = supervisor_for(tmp_path, static_bootstrap(admin, listener), admin)
    await supervisor.start()
    try:
        first = supervisor.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)

        async def replaced() -> bool:
            return supervisor.pid not in (None, first) and await supervisor.live()

        await eventually(replaced)
        assert supervisor.restarts == 1
        assert (await hello(listener)).text == "hello"
    finally:
        await supervisor.stop()


async def test_envoy_that_cannot_start_fails_start_with_its_error(tmp_path: Path) -> None:
    admin = free_port()
    config = static_bootstrap(admin, free_port())
    config["static_resources"]["listeners"][0]["no_such_field"] = True
    supervisor = supervisor_for(tmp_path, config, admin)
    with pytest.raises(EnvoyStartError, match="no_such_field"):
        await supervisor.start()
    assert supervisor.pid is None


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_envoy_accepts_the_agent_bootstrap(tmp_path: Path, delta: bool) -> None:
    identity = WorkloadIdentity(
        name="catalog-v1",
        namespace="shop",
        labels={"app": "catalog"},
        inbound=(InboundPort(18081, 28081, "catalog.shop.svc.cluster.local"),),
    )
    config = build_bootstrap(
        identity,
        pilot_host="localhost",
        pilot_port=15010,
        admin_port=free_port(),
        outbound_port=free_port(),
        delta=delta,
    )
    path = write_bootstrap(tmp_path / "bootstrap.json", config)
    result = subprocess.run(
        [str(find_envoy()), "--mode", "validate", "-c", str(path), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(path.read_text())["node"]["id"].startswith("sidecar~127.0.0.1~catalog-v1")
