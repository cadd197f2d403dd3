"""The Envoy supervisor with a real Envoy: live, restarted when killed, stopped cleanly.

These tests run Envoy on a small static bootstrap (a listener answering 200 directly, or
read from a file the test rewrites, as LDS), so they need no Pilot; the agent against a
real Pilot is in ``test_sidecar_agent.py``.
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
    return {
        "admin": {"address": _address(admin_port)},
        "static_resources": {"listeners": [hello_listener(listener_port, "hello")]},
    }


def hello_listener(port: int, body: str) -> dict[str, Any]:
    """Listener ``hello`` on ``port``: every request is answered 200 with ``body``."""
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
                            "direct_response": {"status": 200, "body": {"inline_string": body}},
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
        "name": "hello",
        "address": _address(port),
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


async def test_replaced_listener_lets_a_kept_alive_connection_finish_gracefully(
    tmp_path: Path,
) -> None:
    """An idle keep-alive connection outlives a short drain and is closed after a response.

    Envoy cuts the connections of a replaced listener when its drain ends; a client
    reusing one at that moment gets a reset (a 503 through a sidecar, not retried). The
    listener comes from a file (LDS) so the test can replace it as Pilot would.
    """
    admin, port = free_port(), free_port()
    lds = tmp_path / "lds.json"
    write_bootstrap(lds, _discovery("1", hello_listener(port, "v1")))
    config = {
        "node": {"id": "test", "cluster": "test"},
        "admin": {"address": _address(admin)},
        "dynamic_resources": {
            "lds_config": {"path_config_source": {"path": str(lds)}, "resource_api_version": "V3"}
        },
    }
    supervisor = supervisor_for(tmp_path, config, admin)
    await supervisor.start()
    try:
        await eventually(lambda: _answers(port, "v1"))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            headers, body = await _exchange(reader, writer)
            assert body == b"v1" and "connection" not in headers  # kept alive
            write_bootstrap(lds, _discovery("2", hello_listener(port, "v2")))
            await eventually(lambda: _answers(port, "v2"))  # the old listener drains
            await asyncio.sleep(1.5)  # longer than a 1 s drain
            headers, body = await _exchange(reader, writer)  # still served, then closed
            assert (body, headers.get("connection")) == (b"v1", "close")
        finally:
            writer.close()
            await writer.wait_closed()
    finally:
        await supervisor.stop()


def _discovery(version: str, listener: dict[str, Any]) -> dict[str, Any]:
    listener_type = "type.googleapis.com/envoy.config.listener.v3.Listener"
    return {"version_info": version, "resources": [{"@type": listener_type, **listener}]}


async def _answers(port: int, body: str) -> bool:
    try:
        return (await hello(port)).text == body
    except httpx.HTTPError:
        return False


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> tuple[dict[str, str], bytes]:
    """One GET on a kept-alive connection: the response's headers (lower case) and body."""
    writer.write(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
    await writer.drain()
    async with asyncio.timeout(WAIT_S):
        head = await reader.readuntil(b"\r\n\r\n")
        status, *lines = head.decode().split("\r\n")
        assert status.startswith("HTTP/1.1 200"), status
        headers = dict(line.lower().split(": ", 1) for line in lines if line)
        return headers, await reader.readexactly(int(headers["content-length"]))


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
