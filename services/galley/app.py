"""Galley's composition root: settings in, a host of started-in-order components out.

:func:`build_galley` wires the core (store, distributor) to its adapters (directory
source, MCP servicer, admin HTTP, validating webhook) on servers it creates. Nothing
listens or reads a file until ``galley.host.start()``. Start order: MCP server, the
distributor, admin HTTP, webhook (its certificate is made first when none is configured),
the store, the directory source (which reads everything and marks the store synced), then
the ports file. Stop goes in reverse, so the distributor ends every MCP stream before the
MCP server drains. The monolith will reuse the same core objects in-process.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.galley.adapters import mcp_server
from services.galley.adapters.directory_source import DirectorySource
from services.galley.adapters.webhook import register_webhook
from services.galley.core.distribution import Distributor
from services.galley.core.store import ConfigStore
from services.galley.ports import ConfigSink, ConfigSource
from services.galley.settings import GalleySettings
from shared.grpc_server import GrpcServer
from shared.http_server import HttpServer, build_http_app
from shared.lifecycle import Component, ComponentHost
from shared.ports_file import Listener, PortsFile
from shared.tls import self_signed_certificate, write_key_pair


@dataclass(frozen=True)
class Galley:
    """The wired service. ``host`` owns the life of every component."""

    settings: GalleySettings
    store: ConfigStore
    distributor: Distributor
    mcp: GrpcServer
    admin: HttpServer
    webhook: HttpServer | None
    host: ComponentHost

    def ports(self) -> dict[str, int]:
        """The bound ports (valid once started): ``mcp``, ``http`` and ``webhook``."""
        ports = {"mcp": self.mcp.port, "http": self.admin.port}
        if self.webhook is not None:
            ports["webhook"] = self.webhook.port
        return ports


def build_galley(settings: GalleySettings) -> Galley:
    """Wire Galley from validated ``settings``; see the module docstring.

    Call it from inside the event loop that will run the host (gRPC servers are bound to
    the loop they are created on).
    """
    distributor = Distributor()
    store = ConfigStore(
        publisher=distributor,
        debounce_quiet=settings.debounce_quiet_s,
        debounce_max=settings.debounce_max_s,
    )
    source = DirectorySource(
        settings.config_dir,
        max_file_bytes=settings.max_file_bytes,
        default_namespace=settings.default_namespace,
    )
    mcp = GrpcServer(host=settings.host, port=settings.mcp_port, name="galley-mcp")
    mcp_server.register(mcp.server, distributor)
    admin = HttpServer(
        build_http_app(
            service="galley",
            readiness=lambda: store.status().synced,
            debug={
                "configz": lambda: _plain(store.status()),
                "syncz": lambda: _plain(distributor.status()),
            },
        ),
        host=settings.host,
        port=settings.http_port,
        name="galley-http",
    )
    components: list[Component] = [mcp, distributor, admin]
    webhook: HttpServer | None = None
    if settings.webhook_enabled:
        certificate = _WebhookCertificate(settings)
        webhook = _webhook_server(settings, certificate.cert_path, certificate.key_path)
        components += [certificate, webhook]
    components += [store, _SourceRunner(source, store)]
    if settings.ports_file is not None:
        listeners: dict[str, Listener] = {"mcp": mcp, "http": admin}
        if webhook is not None:
            listeners["webhook"] = webhook
        components.append(PortsFile(settings.ports_file, listeners))
    return Galley(
        settings=settings,
        store=store,
        distributor=distributor,
        mcp=mcp,
        admin=admin,
        webhook=webhook,
        host=ComponentHost(components, name="galley"),
    )


def _webhook_server(settings: GalleySettings, cert: Path, key: Path) -> HttpServer:
    app = build_http_app(service="galley-webhook", readiness=lambda: True)
    register_webhook(app, default_namespace=settings.default_namespace)
    return HttpServer(
        app,
        host=settings.host,
        port=settings.webhook_port,
        name="galley-webhook",
        tls_cert=cert,
        tls_key=key,
    )


class _WebhookCertificate:
    """Provides the webhook's PEM files: the configured ones, or a fresh self-signed pair."""

    name = "galley-webhook-certificate"

    def __init__(self, settings: GalleySettings) -> None:
        self._host = settings.host
        self._configured = settings.webhook_cert is not None
        if settings.webhook_cert is not None and settings.webhook_key is not None:
            self.cert_path, self.key_path = settings.webhook_cert, settings.webhook_key
        else:
            self._directory = Path(tempfile.gettempdir()) / f"splitmesh-galley-{os.getpid()}"
            self.cert_path = self._directory / "tls.crt"
            self.key_path = self._directory / "tls.key"

    async def start(self) -> None:
        if self._configured:
            return
        cert, key = self_signed_certificate(
            "galley-webhook", ["localhost", self._host, "istio-galley.istio-system.svc"]
        )
        write_key_pair(self._directory, cert, key)

    async def stop(self) -> None:
        if not self._configured:
            for path in (self.cert_path, self.key_path):
                path.unlink(missing_ok=True)


class _SourceRunner:
    """Adapts a :class:`ConfigSource` (which needs a sink) to the Component shape."""

    def __init__(self, source: ConfigSource, sink: ConfigSink) -> None:
        self._source = source
        self._sink = sink
        self.name = source.name

    async def start(self) -> None:
        await self._source.start(self._sink)

    async def stop(self) -> None:
        await self._source.stop()


def _plain(value: object) -> Any:
    """A JSON-friendly copy of a status dataclass (mappings, tuples and issues)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
