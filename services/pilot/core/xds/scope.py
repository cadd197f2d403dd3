"""What one proxy sees: services and VirtualServices after exportTo and Sidecar scoping.

A sidecar proxy is scoped by the Sidecar resource that applies to it (Istio's order: a
Sidecar in its namespace whose ``workloadSelector`` matches its labels, else the
namespace's Sidecar without selector, else the root namespace's Sidecar without
selector); without one it sees everything exported to its namespace. Egress hosts are
``namespace/dnsName`` (``*``, ``.`` for the proxy's namespace, ``~`` for none; host ``*``
or ``*.suffix``). Gateway (router) proxies ignore Sidecars, as in Istio.

:func:`shared_key` is cheap and names everything the shared part of the output (outbound
clusters, endpoints, the ``outbound_http`` routes) depends on: proxies with equal keys
may share it. :func:`scope_key` adds the proxy's own ports and identity, so whole
configs may be cached by it. All functions are pure; :class:`ProxyScope` is immutable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass

from services.pilot.core.model import Proxy
from services.pilot.core.registry import Service, hosts_overlap
from services.pilot.core.snapshot import (
    MESH_GATEWAY,
    BoundVirtualService,
    MeshSnapshot,
    is_exported,
    selector_matches,
)
from services.pilot.core.xds.mixer_mode import mixer_mode
from shared.config import Resource
from shared.config.networking import GatewaySpec, SidecarSpec
from shared.config.networking_gateway import Server

_ALL_HOSTS = ("*/*",)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyScope:
    """The slice of a snapshot one proxy is configured from."""

    key: str
    namespace: str
    labels: Mapping[str, str]
    sidecar: Resource | None
    services: tuple[Service, ...]
    virtual_services: tuple[BoundVirtualService, ...]
    allow_any: bool


@dataclass(frozen=True, slots=True)
class GatewayServer:
    """One server of a Gateway that selects this router, with the gateway's key."""

    gateway: str
    namespace: str
    server: Server


def select_sidecar(snapshot: MeshSnapshot, proxy: Proxy) -> Resource | None:
    """The Sidecar resource that applies to a sidecar proxy, or None (routers: None)."""
    if proxy.type != "sidecar":
        return None
    candidates = snapshot.sidecars(proxy.namespace)
    for sidecar in candidates:
        spec = sidecar.spec
        if (
            isinstance(spec, SidecarSpec)
            and spec.workload_selector is not None
            and spec.workload_selector.labels
            and selector_matches(spec.workload_selector.labels, proxy.labels)
        ):
            return sidecar
    for namespace_candidates in (candidates, snapshot.sidecars(snapshot.mesh.root_namespace)):
        for sidecar in namespace_candidates:
            spec = sidecar.spec
            if isinstance(spec, SidecarSpec) and (
                spec.workload_selector is None or not spec.workload_selector.labels
            ):
                return sidecar
    return None


def shared_key(snapshot: MeshSnapshot, proxy: Proxy) -> str:
    """Equal keys mean equal *shared* output: outbound clusters, endpoints, outbound routes.

    It names the snapshot version, the proxy's namespace, the Sidecar applying to it,
    its labels when some VirtualService matches on source labels, and whether the proxy
    has a workload identity (only then do clusters originate mutual TLS).
    """
    sidecar = select_sidecar(snapshot, proxy)
    parts = [snapshot.version, proxy.namespace, sidecar.metadata.full_name if sidecar else "-"]
    if snapshot.uses_source_matching:
        parts.append(_digest(sorted(proxy.labels.items())))
    if proxy.tls:
        parts.append("tls")
    return "|".join(parts)


def scope_key(snapshot: MeshSnapshot, proxy: Proxy) -> str:
    """Equal keys mean an equal *complete* ProxyConfig (safe to cache whole configs by).

    :func:`shared_key` plus what only this proxy's own resources depend on: its type, IP,
    outbound port and inbound ports, and a router's labels (they select its Gateways).
    With Mixer policy checks on, also its workload name and labels (inbound routes tell
    Mixer the destination workload); with a workload identity, its labels (they select
    PeerAuthentications).
    """
    own = [proxy.type, proxy.ip, proxy.outbound_port, [astuple(port) for port in proxy.inbound]]
    if proxy.type == "router" or proxy.tls:
        own.append(sorted(proxy.labels.items()))
    elif mixer_mode(snapshot.mesh).check is not None:
        own += [proxy.workload_name, sorted(proxy.labels.items())]
    return f"{shared_key(snapshot, proxy)}|{_digest(own)}"


def proxy_scope(snapshot: MeshSnapshot, proxy: Proxy) -> ProxyScope:
    """Compute what ``proxy`` sees (see the module docstring)."""
    sidecar = select_sidecar(snapshot, proxy)
    spec = sidecar.spec if sidecar is not None else None
    egress = _egress_hosts(spec if isinstance(spec, SidecarSpec) else None)
    namespace = proxy.namespace
    mesh = snapshot.mesh
    services = tuple(
        service
        for service in snapshot.services
        if is_exported(
            service.export_to, service.namespace, namespace, mesh.default_service_export_to
        )
        and _egress_allows(egress, namespace, service.namespace, (service.hostname,))
    )
    virtual_services = tuple(
        bound
        for bound in snapshot.virtual_services(MESH_GATEWAY)
        if is_exported(
            bound.spec.export_to,
            bound.namespace,
            namespace,
            mesh.default_virtual_service_export_to,
        )
        and _egress_allows(egress, namespace, bound.namespace, bound.hosts)
    )
    policy = (
        spec.outbound_traffic_policy
        if isinstance(spec, SidecarSpec) and spec.outbound_traffic_policy is not None
        else mesh.outbound_traffic_policy
    )
    return ProxyScope(
        key=shared_key(snapshot, proxy),
        namespace=namespace,
        labels=proxy.labels,
        sidecar=sidecar,
        services=services,
        virtual_services=virtual_services,
        allow_any=policy.mode == "ALLOW_ANY",
    )


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]


def gateway_servers(snapshot: MeshSnapshot, proxy: Proxy) -> dict[int, list[GatewayServer]]:
    """The servers of every Gateway selecting this router, by port (routers only)."""
    servers: dict[int, list[GatewayServer]] = {}
    if proxy.type != "router":
        return servers
    for gateway in snapshot.gateways_for(proxy.labels):
        spec = gateway.spec
        assert isinstance(spec, GatewaySpec)
        for server in spec.servers:
            if server.port is None:
                continue
            servers.setdefault(server.port.number, []).append(
                GatewayServer(gateway.metadata.full_name, gateway.metadata.namespace, server)
            )
    return dict(sorted(servers.items()))


def _egress_hosts(spec: SidecarSpec | None) -> tuple[tuple[str, str], ...]:
    hosts: Sequence[str] = _ALL_HOSTS
    if spec is not None and spec.egress:
        hosts = [host for listener in spec.egress for host in listener.hosts]
    parsed = []
    for value in hosts:
        namespace, _, host = value.partition("/")
        parsed.append((namespace, host.lower()))
    return tuple(parsed)


def _egress_allows(
    egress: Sequence[tuple[str, str]],
    proxy_namespace: str,
    owner_namespace: str,
    hosts: Sequence[str],
) -> bool:
    for namespace, pattern in egress:
        if namespace == "~":
            continue
        if namespace not in ("*", owner_namespace) and not (
            namespace == "." and owner_namespace == proxy_namespace
        ):
            continue
        if any(hosts_overlap(pattern, host) for host in hosts):
            return True
    return False
