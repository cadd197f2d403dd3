"""The HTTP side of every splitmesh service: the admin app and the server that runs it.

:func:`build_http_app` returns a FastAPI app with the endpoints every service has —
``GET /healthz`` (200 ``ok`` while the process serves), ``GET /readyz`` (200 when the
service's readiness callable says so, else 503 with the reason), ``GET /metrics``
(Prometheus text from the process's default registry, which holds the OpenTelemetry
metrics once :func:`shared.telemetry.configure_telemetry` ran) and ``GET /debug`` /
``GET /debug/{name}`` (JSON from the service's debug callables). Requests other than
probes and scrapes run in a trace span (:class:`shared.telemetry.TraceMiddleware`) and are
measured by FastAPI's own request metrics (``http_server_request_duration_seconds``).
Adapters add their routers (webhooks) to the app before the server starts.

:class:`HttpServer` is a :class:`~shared.lifecycle.Component` running uvicorn on a task of
the current event loop, on a socket it binds itself (so :attr:`HttpServer.port` is known),
optionally over TLS. It never touches signal handlers or logging configuration: the
process's :class:`~shared.lifecycle.ComponentHost` and :mod:`shared.telemetry` own those.

Task safety: readiness and debug callables run on the event loop thread, so they may read
loop-owned state without locks; they must be quick. Errors: a port that cannot be bound
raises ``OSError`` from :meth:`HttpServer.start`; unreadable TLS files raise there too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from shared.telemetry import TraceMiddleware

_log = logging.getLogger(__name__)
_UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_START_POLL_SECONDS = 0.01


def build_http_app(
    *,
    service: str,
    readiness: Callable[[], bool],
    debug: Mapping[str, Callable[[], object]] | None = None,
) -> FastAPI:
    """The admin app of ``service`` (see the module docstring for its endpoints)."""
    views = dict(debug or {})
    app = FastAPI(
        title=service,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # FastAPI's own telemetry keeps only its request metrics: TraceMiddleware makes the
        # spans (one per request, for any ASGI app) and shared.telemetry owns the logs.
        telemetry={
            "tracing": False,
            "operation_spans": False,
            "logs": False,
            "exclude": _is_probe,
        },
    )
    app.add_middleware(TraceMiddleware, exclude_paths=_UNTRACED_PATHS)

    @app.get("/healthz", response_class=PlainTextResponse)
    async def healthz() -> str:
        return "ok"

    @app.get("/readyz", response_class=PlainTextResponse)
    async def readyz() -> PlainTextResponse:
        try:
            ready = readiness()
        except Exception as exc:
            _log.exception("readiness check of %s failed", service)
            return PlainTextResponse(f"{service} readiness check failed: {exc}", 503)
        if not ready:
            return PlainTextResponse(f"{service} is not ready", 503)
        return PlainTextResponse("ready")

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.get("/debug")
    async def debug_index() -> dict[str, object]:
        return {"service": service, "debug": sorted(views)}

    @app.get("/debug/{name}")
    async def debug_view(name: str) -> JSONResponse:
        view = views.get(name)
        if view is None:
            raise HTTPException(404, f"no debug view {name!r}; see /debug")
        return JSONResponse(jsonable_encoder(view()))

    return app


def _is_probe(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in _UNTRACED_PATHS


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn that leaves signals to the process's ComponentHost."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """A Component serving an ASGI app on ``host:port`` (``port=0`` picks a free port)."""

    def __init__(
        self,
        app: FastAPI,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "http",
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        grace: float = 5.0,
        access_log: bool = False,
    ) -> None:
        """Serve HTTPS when ``tls_cert`` (PEM chain) and ``tls_key`` (PEM key) are given."""
        if (tls_cert is None) != (tls_key is None):
            raise ValueError(f"{name}: give both tls_cert and tls_key, or neither")
        self._config = uvicorn.Config(
            app,
            log_config=None,
            access_log=access_log,
            lifespan="off",
            ws="none",
            http="h11",
            ssl_certfile=tls_cert,
            ssl_keyfile=tls_key,
            timeout_graceful_shutdown=math.ceil(grace),
        )
        self._host = host
        self._requested_port = port
        self._name = name
        self._uvicorn: _EmbeddedUvicorn | None = None
        self._serving: asyncio.Task[None] | None = None
        self._port: int | None = None
        self._stopping: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        """The component name used in logs."""
        return self._name

    @property
    def port(self) -> int:
        """The bound port; only known after :meth:`start`."""
        if self._port is None:
            raise RuntimeError(f"{self._name} is not started")
        return self._port

    async def start(self) -> None:
        """Bind, start uvicorn, and return once it accepts connections."""
        if self._serving is not None or self._stopping is not None:
            raise RuntimeError(f"{self._name} was already started")
        if not self._config.loaded:
            self._config.load()
        sock = _bind(self._host, self._requested_port)
        server = _EmbeddedUvicorn(self._config)
        self._uvicorn = server
        self._serving = asyncio.create_task(server.serve(sockets=[sock]), name=self._name)
        while not server.started:
            if self._serving.done():
                sock.close()
                await self._serving  # re-raises what stopped it
                raise RuntimeError(f"{self._name} stopped while starting")
            await asyncio.sleep(_START_POLL_SECONDS)
        self._port = sock.getsockname()[1]

    async def stop(self) -> None:
        """Stop accepting, let requests finish for the grace period, stop. Idempotent."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._shutdown())
        await asyncio.shield(self._stopping)

    async def _shutdown(self) -> None:
        if self._uvicorn is None or self._serving is None:
            return
        self._uvicorn.should_exit = True
        await self._serving


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock
