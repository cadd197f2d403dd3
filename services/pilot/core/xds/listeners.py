"""LDS: the outbound HTTP listener, inbound listeners and gateway listeners.

Every HTTP listener runs an HTTP connection manager that takes its routes over RDS on
the ADS stream, with the filter chain fault → cors → router. :class:`HttpOptions` adds
to a manager what a policy and telemetry mode needs (Mixer mode: ext_authz and rate
limit before the router, a gRPC access log, the caller's service cluster header).
``outbound_http`` binds the proxy's ``SPLITMESH_OUTBOUND_PORT``; ``inbound|<port>``
binds each endpoint port the proxy serves (TCP ports get a TCP proxy to the inbound
cluster; :mod:`.tls` secures them per PeerAuthentication); ``gateway_<port>`` binds each
HTTP server port of the Gateways selecting a router. Listeners bind the proxy's IP
(127.0.0.1 in the local model). Gateway servers that terminate TLS or carry TCP wait for
later issues and are reported. Pure functions; messages returned are new.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from services.pilot.core.model import InboundPort, Proxy
from services.pilot.core.registry import HTTP_PROTOCOLS
from services.pilot.core.xds import naming, protos
from services.pilot.core.xds.problems import Problems
from services.pilot.core.xds.scope import GatewayServer


@dataclass(frozen=True, slots=True)
class HttpOptions:
    """Additions to an HTTP connection manager; the default adds nothing.

    ``filters`` go right before the router, in order; ``access_log`` entries are added to
    the manager; ``add_user_agent`` makes Envoy send its service cluster (node cluster)
    in ``x-envoy-downstream-service-cluster`` (and as ``user-agent`` when there is none).
    """

    filters: tuple[hcm.HttpFilter, ...] = ()
    access_log: tuple[accesslog_pb2.AccessLog, ...] = ()
    add_user_agent: bool = False


def outbound_listener(
    proxy: Proxy, options: HttpOptions | None = None
) -> listener_pb2.Listener | None:
    """``outbound_http`` on the proxy's outbound port, or None when it has none."""
    if proxy.outbound_port is None:
        return None
    return _listener(
        naming.OUTBOUND_HTTP,
        proxy.ip,
        proxy.outbound_port,
        _http_manager(naming.OUTBOUND_HTTP, naming.OUTBOUND_HTTP, options),
        base_pb2.TrafficDirection.OUTBOUND,
    )


def inbound_listener(
    proxy: Proxy, inbound: InboundPort, options: HttpOptions | None = None
) -> listener_pb2.Listener:
    """``inbound|<port>``: HTTP to the inbound route config, anything else proxied as TCP.

    ``options`` apply to the HTTP connection manager only (TCP ports get none).
    """
    name = naming.inbound_listener(inbound.port)
    if inbound.protocol in HTTP_PROTOCOLS:
        network_filter = _http_manager(name, naming.inbound_route(inbound.port), options)
    else:
        network_filter = listener_components_pb2.Filter(
            name=naming.TCP_PROXY_FILTER,
            typed_config=protos.pack(
                tcp_proxy_pb2.TcpProxy(
                    stat_prefix=name,
                    cluster=naming.inbound_cluster(inbound.port, inbound.service),
                )
            ),
        )
    return _listener(
        name, proxy.ip, inbound.port, network_filter, base_pb2.TrafficDirection.INBOUND
    )


def gateway_listeners(
    proxy: Proxy,
    servers: Mapping[int, Sequence[GatewayServer]],
    problems: Problems,
    options: HttpOptions | None = None,
) -> dict[str, listener_pb2.Listener]:
    """``gateway_<port>`` for every port with an HTTP server; other servers are reported."""
    listeners: dict[str, listener_pb2.Listener] = {}
    for port, port_servers in servers.items():
        http = [s for s in port_servers if is_http_server(s)]
        for server in port_servers:
            if not is_http_server(server):
                problems.note(
                    f"Gateway {server.gateway}",
                    f"server on port {port} with protocol {_protocol(server)!r} is not "
                    "supported yet (only plain HTTP servers are)",
                )
        if http:
            name = naming.gateway_listener(port)
            listeners[name] = _listener(
                name,
                proxy.ip,
                port,
                _http_manager(name, naming.gateway_route(port), options),
                base_pb2.TrafficDirection.OUTBOUND,
            )
    return listeners


def is_http_server(server: GatewayServer) -> bool:
    """True for a plain HTTP (or HTTP/2, gRPC) server without TLS termination."""
    tls = server.server.tls
    terminates = tls is not None and not tls.https_redirect
    return _protocol(server) in HTTP_PROTOCOLS and not terminates


def http_filters(before_router: Sequence[hcm.HttpFilter] = ()) -> list[hcm.HttpFilter]:
    """fault → cors → ``before_router`` → router; fault, cors and router with empty configs."""
    return [
        hcm.HttpFilter(name=naming.FAULT_FILTER, typed_config=protos.pack(fault_pb2.HTTPFault())),
        hcm.HttpFilter(name=naming.CORS_FILTER, typed_config=protos.pack(cors_pb2.Cors())),
        *before_router,
        hcm.HttpFilter(name=naming.ROUTER_FILTER, typed_config=protos.pack(router_pb2.Router())),
    ]


def _protocol(server: GatewayServer) -> str:
    port = server.server.port
    return (port.protocol or "").upper() if port is not None else ""


def _http_manager(
    stat_prefix: str, route_config: str, options: HttpOptions | None
) -> listener_components_pb2.Filter:
    options = options or HttpOptions()
    manager = hcm.HttpConnectionManager(
        stat_prefix=stat_prefix,
        rds=hcm.Rds(config_source=protos.ads_source(), route_config_name=route_config),
        http_filters=http_filters(options.filters),
        access_log=options.access_log,
    )
    if options.add_user_agent:
        manager.add_user_agent.value = True
    return listener_components_pb2.Filter(name=naming.HCM_FILTER, typed_config=protos.pack(manager))


def _listener(
    name: str,
    ip: str,
    port: int,
    network_filter: listener_components_pb2.Filter,
    direction: int,
) -> listener_pb2.Listener:
    return listener_pb2.Listener(
        name=name,
        address=protos.address(ip, port),
        filter_chains=[listener_components_pb2.FilterChain(filters=[network_filter])],
        traffic_direction=direction,
    )
