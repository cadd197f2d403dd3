"""RDS: the ``outbound_http``, ``inbound|<port>`` and gateway ``http.<port>`` route configs.

``outbound_http`` has one virtual host per HTTP port of every visible service, named
``host:port``, with the domains an app may put in the Host header: the FQDN, and for
``*.svc.cluster.local`` hosts ``name.namespace.svc`` and ``name.namespace`` (plus the bare
``name`` for a proxy in the service's namespace), the service's IP addresses; all with
``:port``, and without the port for the service's first HTTP port. Routes come from the
first visible mesh VirtualService claiming the host (Istio does not merge VirtualServices
in sidecars), else a default route. VirtualService hosts that are not services get their
own virtual host. A last ``*`` virtual host sends unknown hosts to PassthroughCluster
(ALLOW_ANY) or answers 502 (REGISTRY_ONLY), as Istio's ``allow_any``/``block_all``.

Gateway route configs merge the VirtualServices bound to each server's gateway per
host, in ``(namespace, name)`` order with catch-all routes last (Istio's documented
gateway merge). A domain is used once per route configuration (Envoy rejects
duplicates): the first claim wins. Pure functions; messages returned are new.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import replace

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from google.protobuf import any_pb2

from services.pilot.core.model import InboundPort
from services.pilot.core.registry import (
    DOMAIN_SUFFIX,
    Service,
    ServicePort,
    hosts_overlap,
    more_specific,
)
from services.pilot.core.snapshot import BoundVirtualService, is_exported
from services.pilot.core.xds import naming
from services.pilot.core.xds.http_route import (
    RouteContext,
    RouteMemo,
    default_route,
    is_catch_all,
    virtual_service_routes,
)
from services.pilot.core.xds.problems import Problems
from services.pilot.core.xds.scope import GatewayServer, ProxyScope

_BAD_GATEWAY = 502


def outbound_route_config(
    scope: ProxyScope,
    context: RouteContext,
    problems: Problems,
    *,
    memo: RouteMemo | None = None,
) -> route_pb2.RouteConfiguration:
    """The ``outbound_http`` route configuration of a scope.

    ``memo``, when given, supplies VirtualService routes built for another scope with the
    same snapshot and cluster plan (see :class:`RouteMemo`).
    """
    build = memo.routes if memo is not None else virtual_service_routes
    claims = _claims(scope)
    used: set[str] = set()
    config = route_pb2.RouteConfiguration(name=naming.OUTBOUND_HTTP)
    port_contexts: dict[int | None, RouteContext] = {}

    def at_port(port: int | None) -> RouteContext:
        found = port_contexts.get(port)
        if found is None:
            found = port_contexts[port] = replace(context, port=port)
        return found

    for service in scope.services:
        http_ports = [port for port in service.ports if port.is_http]
        for port in http_ports:
            with problems.guard(f"{service.source} port {port.number}"):
                domains = _unused(_domains(service, port, port is http_ports[0], scope), used)
                if not domains:
                    continue
                port_context = at_port(port.number)
                bound = claims.get(service.hostname)
                routes = (
                    build(bound, port_context, problems)
                    if bound is not None
                    else [default_route(_cluster(service, port), port_context)]
                )
                name = f"{service.hostname}:{port.number}"
                config.virtual_hosts.add(name=name, domains=domains).routes.extend(routes)
    visible = {service.hostname for service in scope.services}
    for host, bound in claims.items():
        if host in visible:
            continue
        with problems.guard(f"{bound.resource.ref} host {host}"):
            domains = _unused([host] if host.startswith("*") else [host, f"{host}:*"], used)
            if domains:
                routes = build(bound, at_port(None), problems)
                config.virtual_hosts.add(name=host, domains=domains).routes.extend(routes)
    if "*" not in used:
        config.virtual_hosts.append(_catch_all(scope.allow_any))
    return config


def inbound_route_config(
    inbound: InboundPort,
    *,
    typed_per_filter_config: Mapping[str, any_pb2.Any] | None = None,
    rate_limits: Sequence[rc.RateLimit] = (),
) -> route_pb2.RouteConfiguration:
    """``inbound|<port>``: every request on the port to the app's inbound cluster.

    ``typed_per_filter_config`` and ``rate_limits`` go on that route (policy modes).
    """
    route = rc.Route(name="default", match=rc.RouteMatch(prefix="/"))
    route.route.cluster = naming.inbound_cluster(inbound.port, inbound.service)
    route.route.timeout.SetInParent()
    route.route.rate_limits.extend(rate_limits)
    for name, config in (typed_per_filter_config or {}).items():
        route.typed_per_filter_config[name].CopyFrom(config)
    return route_pb2.RouteConfiguration(
        name=naming.inbound_route(inbound.port),
        virtual_hosts=[
            rc.VirtualHost(
                name=f"inbound|{inbound.name}|{inbound.port}", domains=["*"], routes=[route]
            )
        ],
    )


def gateway_route_config(
    port: int,
    servers: Sequence[GatewayServer],
    context: RouteContext,
    problems: Problems,
) -> route_pb2.RouteConfiguration:
    """``http.<port>``: the merged VirtualServices of every server on a gateway port."""
    mesh = context.snapshot.mesh
    merged: dict[str, list[rc.Route]] = {}
    redirect: set[str] = set()
    seen: set[tuple[str, str]] = set()
    for server in servers:
        server_context = replace(context, gateway=server.gateway, port=port)
        for bound in context.snapshot.virtual_services(server.gateway):
            if not is_exported(
                bound.spec.export_to,
                bound.namespace,
                context.proxy_namespace,
                mesh.default_virtual_service_export_to,
            ):
                continue
            for domain in _server_domains(server, bound):
                if (bound.resource.ref, domain) in seen:
                    continue
                seen.add((bound.resource.ref, domain))
                routes = virtual_service_routes(bound, server_context, problems)
                merged.setdefault(domain, []).extend(routes)
                tls = server.server.tls
                if tls is not None and tls.https_redirect:
                    redirect.add(domain)
    used: set[str] = set()
    hosts = []
    for domain, routes in merged.items():
        candidates = [domain] if domain == "*" else [domain, f"{domain}:{port}"]
        domains = _unused(candidates, used)
        if not domains:
            continue
        ordered = [r for r in routes if not is_catch_all(r)] + [
            r for r in routes if is_catch_all(r)
        ]
        host = rc.VirtualHost(name=f"{domain}:{port}", domains=domains, routes=ordered)
        if domain in redirect:
            host.require_tls = rc.VirtualHost.ALL
        hosts.append(host)
    return route_pb2.RouteConfiguration(name=naming.gateway_route(port), virtual_hosts=hosts)


def _claims(scope: ProxyScope) -> dict[str, BoundVirtualService]:
    """Which mesh VirtualService routes each host: the first one (in order) to claim it."""
    visible = {service.hostname for service in scope.services}
    claims: dict[str, BoundVirtualService] = {}
    for bound in scope.virtual_services:
        for host in bound.hosts:
            if host.startswith("*"):
                targets = [name for name in visible if hosts_overlap(host, name)] or [host]
            else:
                targets = [host]
            for target in sorted(targets):
                claims.setdefault(target, bound)
    return claims


def _domains(service: Service, port: ServicePort, first: bool, scope: ProxyScope) -> list[str]:
    host = service.hostname
    names = [host]
    suffix = f".{service.namespace}.{DOMAIN_SUFFIX}"
    if host.endswith(suffix):
        short = host[: -len(f".{DOMAIN_SUFFIX}")]
        names += [f"{short}.svc", short]
        if scope.namespace == service.namespace:
            names.append(host[: -len(suffix)])
    names += [address for address in service.addresses if _is_ip(address)]
    with_port = [f"{name}:{port.number}" for name in names]
    return names + with_port if first else with_port


def _server_domains(server: GatewayServer, bound: BoundVirtualService) -> list[str]:
    domains = []
    for entry in server.server.hosts:
        namespace, slash, host = entry.partition("/")
        if not slash:
            namespace, host = "*", entry
        if namespace not in ("*", bound.namespace) and not (
            namespace == "." and bound.namespace == server.namespace
        ):
            continue
        domains += [more_specific(host, h) for h in bound.hosts if hosts_overlap(host, h)]
    return list(dict.fromkeys(domains))


def _unused(candidates: Sequence[str], used: set[str]) -> list[str]:
    fresh = [domain for domain in dict.fromkeys(candidates) if domain not in used]
    used.update(fresh)
    return fresh


def _catch_all(allow_any: bool) -> rc.VirtualHost:
    route = rc.Route(
        name="allow_any" if allow_any else "block_all", match=rc.RouteMatch(prefix="/")
    )
    if allow_any:
        route.route.cluster = naming.PASSTHROUGH_CLUSTER
        route.route.timeout.SetInParent()
    else:
        route.direct_response.status = _BAD_GATEWAY
    return rc.VirtualHost(name=route.name, domains=["*"], routes=[route])


def _cluster(service: Service, port: ServicePort) -> str:
    return naming.outbound_cluster(port.number, service.hostname)


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
