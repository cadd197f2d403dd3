"""The gRPC server every splitmesh service serves its APIs on.

:class:`GrpcServer` is a :class:`~shared.lifecycle.Component` around one
``grpc.aio.Server`` (created with ``grpc.so_reuseport`` off, so two servers never share a
port, and with :class:`~shared.telemetry.TracingServerInterceptor`). Adapters register their
servicers on :attr:`GrpcServer.server` before :meth:`GrpcServer.start`; the server then adds
the standard health service (``""`` and every registered service SERVING, plus whatever
:meth:`GrpcServer.set_serving` was told) and server reflection for the registered services,
binds and starts. :meth:`GrpcServer.stop` first turns every health status NOT_SERVING,
then drains calls for the grace period and cancels what is left.

Ownership and task safety: the ``grpc.aio.Server`` belongs to the event loop that is
running when :attr:`GrpcServer.server` is first read, and every method must be called on
that loop. Registered service names are learnt from ``add_registered_method_handlers``
(what generated ``add_*Servicer_to_server`` functions call); a service added only through
generic handlers must be announced with :meth:`set_serving`.

Errors: a port that cannot be bound raises ``OSError``; starting twice raises
``RuntimeError``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from shared.telemetry import TracingServerInterceptor

_OPTIONS = [("grpc.so_reuseport", 0)]


class GrpcServer:
    """A Component serving gRPC on ``host:port`` (``port=0`` picks a free port)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "grpc",
        grace: float = 5.0,
        credentials: grpc.ServerCredentials | None = None,
    ) -> None:
        """``credentials`` (``grpc.ssl_server_credentials``) serve TLS instead of plaintext."""
        self._host = host
        self._requested_port = port
        self._name = name
        self._grace = grace
        self._credentials = credentials
        self._server: Any = None
        self._registered: list[str] = []
        self._serving: dict[str, bool] = {}
        self._health: HealthServicer | None = None
        self._port: int | None = None
        self._stopping: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        """The component name used in logs."""
        return self._name

    @property
    def server(self) -> Any:
        """The ``grpc.aio.Server`` to register servicers on (created on first use, in-loop)."""
        if self._server is None:
            asyncio.get_running_loop()  # the server binds to this loop: refuse to guess one
            server = grpc.aio.server(interceptors=[TracingServerInterceptor()], options=_OPTIONS)
            register = server.add_registered_method_handlers

            def add_registered_method_handlers(service: str, handlers: Any) -> None:
                self._registered.append(service)
                register(service, handlers)

            server.add_registered_method_handlers = add_registered_method_handlers
            self._server = server
        return self._server

    @property
    def port(self) -> int:
        """The bound port; only known after :meth:`start`."""
        if self._port is None:
            raise RuntimeError(f"{self._name} is not started")
        return self._port

    async def set_serving(self, service: str, serving: bool = True) -> None:
        """Report ``service`` as SERVING (or NOT_SERVING) through the health service.

        Before start the status is remembered; after stop it stays NOT_SERVING.
        """
        self._serving[service] = serving
        if self._health is not None:
            await self._health.set(service, _status(serving))

    async def start(self) -> None:
        """Add health and reflection, bind and start serving."""
        if self._port is not None or self._stopping is not None:
            raise RuntimeError(f"{self._name} was already started")
        server = self.server
        health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        services = list(dict.fromkeys(self._registered))
        reflection.enable_server_reflection([*services, reflection.SERVICE_NAME], server)
        for service in services:
            self._serving.setdefault(service, True)
        for service, serving in self._serving.items():
            await health.set(service, _status(serving))
        address = f"[{self._host}]" if ":" in self._host else self._host
        address = f"{address}:{self._requested_port}"
        try:
            if self._credentials is None:
                port = server.add_insecure_port(address)
            else:
                port = server.add_secure_port(address, self._credentials)
        except RuntimeError as exc:
            raise OSError(f"{self._name}: cannot listen on {address}: {exc}") from exc
        await server.start()
        self._health = health
        self._port = port

    async def stop(self) -> None:
        """Turn health NOT_SERVING, drain for the grace period, stop. Idempotent."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._shutdown())
        await asyncio.shield(self._stopping)

    async def _shutdown(self) -> None:
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        if self._port is not None:
            await self._server.stop(self._grace)


def _status(serving: bool) -> Any:
    if serving:
        return health_pb2.HealthCheckResponse.SERVING
    return health_pb2.HealthCheckResponse.NOT_SERVING
