"""Real Redis, Galley and Mixer processes, and the gRPC calls Envoy would make to Mixer.

Fixtures:

- ``redis_server``: a fresh ``redis-server`` on a free port (``--save '' --appendonly
  no``), stopped at teardown. :class:`RedisServer` can be stopped and restarted on the
  same port.
- ``mixer_mesh`` (module scope): one Redis, one Galley on a config directory and two
  Mixers (``role=all``) following it and sharing the Redis, like two ``istio-policy``
  replicas: ``mixers[0]`` fails quota open when Redis fails, ``mixers[1]`` closed.
  Tests replace the config with :meth:`MixerMesh.configure`, which waits until both
  Mixers compiled the new objects. Processes get SIGTERM at teardown and every stop
  must exit 0.
- ``static_feed``: config for an in-process ``build_mixer`` without Galley (Mixer's
  :class:`~services.mixer.adapters.static_feed.StaticFeed` over fixed YAML).

Everything runs on 127.0.0.1 with ports picked by the kernel.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2_grpc
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from services.mixer.adapters.static_feed import StaticFeed
from shared.config import parse_yaml
from shared.process import ServiceProcess
from tests.integration.service_process import ServiceUnderTest

START_TIMEOUT_S = 30.0
WAIT_S = 15.0


def free_port() -> int:
    """A port the kernel considers free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A ``redis-server`` child process on a fixed port; restartable."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self._workdir = workdir
        self._process: ServiceProcess | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>``."""
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start and wait until it answers PING."""
        self._process = ServiceProcess(
            ["redis-server", "--save", "", "--appendonly", "no", "--bind", "127.0.0.1",
             "--port", str(self.port)],
            log_path=self._workdir / "redis.log",
        )  # fmt: skip
        self._process.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._pong():
            assert self._process.running(), self._process.log_tail()
            assert time.monotonic() < deadline, "redis-server did not answer PING"
            time.sleep(0.01)

    def stop(self) -> None:
        """SIGTERM and wait. Idempotent."""
        process, self._process = self._process, None
        if process is not None:
            process.stop()

    def freeze(self, frozen: bool) -> None:
        """SIGSTOP (a Redis that accepts connections and never answers) or SIGCONT."""
        assert self._process is not None
        self._process.signal(signal.SIGSTOP if frozen else signal.SIGCONT)

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


async def eventually(condition: Any, what: str) -> None:
    """Wait (up to :data:`WAIT_S`) until ``condition()`` is true."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@dataclass
class MixerMesh:
    """Redis, Galley and two Mixers (see the module docstring)."""

    config_dir: Path
    redis: RedisServer
    galley: ServiceUnderTest
    mixers: Sequence[ServiceUnderTest]

    async def configure(self, text: str, *, handlers: Sequence[str]) -> None:
        """Make ``text`` the whole config and wait until every Mixer serves ``handlers``
        (fully qualified; the built-in ``prometheus.handler.istio-system`` is implied)."""
        path = self.config_dir / "test.yaml"
        partial = path.with_suffix(".partial")
        partial.write_text(text)
        partial.replace(path)
        expected = sorted({*handlers, "prometheus.handler.istio-system"})
        for mixer in self.mixers:
            await eventually(
                lambda m=mixer: m.debug("configz")["handlers"] == expected,
                f"{mixer.label} to serve {expected}",
            )
            assert mixer.debug("configz")["issues"] == []

    async def check(self, mixer: int, request: Any) -> Any:
        """ext_authz Check on ``mixers[mixer]``."""
        async with grpc.aio.insecure_channel(self.mixers[mixer].address("grpc")) as channel:
            stub = external_auth_pb2_grpc.AuthorizationStub(channel)
            return await stub.Check(request, timeout=WAIT_S)

    async def rate_limit(self, mixer: int, request: rls_pb2.RateLimitRequest) -> Any:
        """RLS ShouldRateLimit on ``mixers[mixer]``."""
        async with grpc.aio.insecure_channel(self.mixers[mixer].address("grpc")) as channel:
            stub = rls_pb2_grpc.RateLimitServiceStub(channel)
            return await stub.ShouldRateLimit(request, timeout=WAIT_S)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A started Redis; stopped at teardown."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mixer_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MixerMesh]:
    """Redis + Galley + two Mixers; see the module docstring."""
    workdir = tmp_path_factory.mktemp("mixer-mesh")
    config_dir = workdir / "config"
    config_dir.mkdir()
    redis = RedisServer(workdir)
    redis.start()
    galley = ServiceUnderTest(
        "galley",
        workdir=workdir,
        env={
            "SPLITMESH_GALLEY_CONFIG_DIR": str(config_dir),
            "SPLITMESH_GALLEY_MCP_PORT": "0",
            "SPLITMESH_GALLEY_HTTP_PORT": "0",
            "SPLITMESH_GALLEY_WEBHOOK_ENABLED": "false",
            "SPLITMESH_GALLEY_DEBOUNCE_QUIET_S": "0.02",
            "SPLITMESH_GALLEY_DEBOUNCE_MAX_S": "0.1",
        },
    )
    started = [galley]
    mixers: list[ServiceUnderTest] = []
    try:
        galley.start()
        for index, fail_open in enumerate(("true", "false")):
            mixer = ServiceUnderTest(
                "mixer",
                label=f"mixer-{index}",
                workdir=workdir,
                env={
                    "SPLITMESH_MIXER_GALLEY_ADDRESS": galley.address("mcp"),
                    "SPLITMESH_MIXER_GRPC_PORT": "0",
                    "SPLITMESH_MIXER_HTTP_PORT": "0",
                    "SPLITMESH_MIXER_QUOTA_FAIL_OPEN": fail_open,
                    "SPLITMESH_MIXER_QUOTA_TIMEOUT_S": "0.5",
                    "SPLITMESH_MIXER_REPORT_BATCH_MAX_TIME_S": "0.02",
                    "SPLITMESH_MIXER_MCP_MAX_BACKOFF_S": "0.5",
                },
            )
            mixers.append(mixer)
            started.append(mixer)
            mixer.start()
        for mixer in mixers:
            deadline = time.monotonic() + WAIT_S
            while mixer.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, mixer.log_tail()
                time.sleep(0.05)
        yield MixerMesh(config_dir, redis, galley, mixers)
    finally:
        for service in reversed(started):
            service.stop()
        redis.stop()
    for service in started:
        assert all(code == 0 for code in service.exit_codes), (
            f"{service.label} exited {service.exit_codes}:\n{service.log_tail()}"
        )


@pytest.fixture
def static_feed() -> Any:
    """``static_feed(text, hold=False)`` → a feed factory for ``build_mixer`` serving the
    YAML ``text``; the feeds it made are in its ``feeds`` attribute (``release()`` one
    that holds)."""

    class Factory:
        def __init__(self) -> None:
            self.feeds: list[StaticFeed] = []

        def __call__(self, text: str, *, hold: bool = False) -> Any:
            result = parse_yaml(text, "static.yaml")
            assert not result.issues, result.issues

            def make(handler: Any) -> StaticFeed:
                feed = StaticFeed(handler, result.resources, hold=hold)
                self.feeds.append(feed)
                return feed

            return make

    return Factory()
