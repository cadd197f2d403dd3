"""Pilot's composition root: settings in, a host of started-in-order components out.

:func:`build_pilot` wires the core (config store → discovery server, with xDS generation
from ``core.xds.generate``) to its adapters: the MCP config feed following Galley, the ADS
servicer on the xDS gRPC server and the debug routes on the admin HTTP server. Nothing
listens or connects until ``pilot.host.start()``. Start order: xDS gRPC server, discovery
server, admin HTTP, the config feed (returns at once; Galley may be down), the idle
collector (full garbage collections wait until no push was released and no proxy
connected for a while: one takes ~0.25 s with a large mesh loaded), then the ports file.
Stop goes in reverse, so the discovery server closes every ADS stream (they end with OK
and Envoy reconnects) before the gRPC server drains.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.pilot.adapters import ads_server, debug_http
from services.pilot.adapters.mcp_feed import McpConfigFeed
from services.pilot.core.ads.server import DiscoveryServer
from services.pilot.core.config_store import ConfigStore
from services.pilot.core.xds import generate as xds_generate
from services.pilot.ports import ConfigFeed, SnapshotHandler
from services.pilot.settings import PilotSettings
from shared.grpc_server import GrpcServer
from shared.http_server import HttpServer, build_http_app
from shared.idle_gc import IdleCollector
from shared.lifecycle import Component, ComponentHost
from shared.ports_file import PortsFile

SINK_ID = "pilot"


@dataclass(frozen=True)
class Pilot:
    """The wired service. ``host`` owns the life of every component."""

    settings: PilotSettings
    store: ConfigStore
    discovery: DiscoveryServer
    feed: McpConfigFeed
    xds: GrpcServer
    admin: HttpServer
    host: ComponentHost

    def ports(self) -> dict[str, int]:
        """The bound ports (valid once started): ``grpc`` (xDS) and ``http`` (admin)."""
        return {"grpc": self.xds.port, "http": self.admin.port}


def build_pilot(settings: PilotSettings) -> Pilot:
    """Wire Pilot from validated ``settings``; see the module docstring.

    Call it from inside the event loop that will run the host (gRPC servers are bound to
    the loop they are created on).
    """
    discovery = DiscoveryServer(
        translation=xds_generate,
        debounce_quiet=settings.debounce_quiet_s,
        debounce_max=settings.debounce_max_s,
        push_concurrency=settings.push_concurrency,
    )
    store = ConfigStore(sink=discovery)
    feed = McpConfigFeed(
        target=settings.galley_address, sink_id=SINK_ID, collections=store.collections
    )
    xds = GrpcServer(host=settings.host, port=settings.grpc_port, name="pilot-xds")
    ads_server.register(xds.server, discovery, send_concurrency=settings.send_concurrency)
    app = build_http_app(
        service="pilot",
        readiness=lambda: store.synced,
        debug=debug_http.debug_views(discovery, store, lambda: feed.last_error),
    )
    debug_http.register(app, discovery, store)
    admin = HttpServer(app, host=settings.host, port=settings.http_port, name="pilot-http")
    components: list[Component] = [
        xds,
        discovery,
        admin,
        _FeedRunner(feed, store.apply),
        IdleCollector(discovery.last_activity),
    ]
    if settings.ports_file is not None:
        components.append(PortsFile(settings.ports_file, {"grpc": xds, "http": admin}))
    return Pilot(
        settings=settings,
        store=store,
        discovery=discovery,
        feed=feed,
        xds=xds,
        admin=admin,
        host=ComponentHost(components, name="pilot"),
    )


class _FeedRunner:
    """Adapts a :class:`ConfigFeed` (started with its handler) to the Component shape."""

    def __init__(self, feed: ConfigFeed, handler: SnapshotHandler) -> None:
        self._feed = feed
        self._handler = handler
        self.name = feed.name

    async def start(self) -> None:
        await self._feed.start(self._handler)

    async def stop(self) -> None:
        await self._feed.stop()
