"""The service registry as Pilot sees it: services, their ports and their endpoints.

:class:`Service`, :class:`ServicePort` and :class:`Endpoint` are immutable values (safe to
share between tasks). :func:`services_from_service_entries` is the local-mode registry:
every ServiceEntry host becomes one :class:`Service` with all the entry's ports and
endpoints; short hosts resolve in the entry's namespace (:func:`fqdn`). It never raises
on resources Galley accepted and returns services in a stable order (by namespace and
name of the entry, then host order), so equal input gives equal output.

:class:`ServiceRegistry` is the narrow port a registry implements for Pilot (the
ServiceEntry store now, Kubernetes later). Host helpers (:func:`fqdn`,
:func:`host_matches`, :func:`hosts_overlap`) implement Istio's host rules for Pilot;
Pilot never imports Galley.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, Protocol

from shared.config import Resource
from shared.config.networking import ServiceEntrySpec
from shared.config.networking_serviceentry import WorkloadEntry
from shared.config.networking_types import Port

DOMAIN_SUFFIX = "svc.cluster.local"
HTTP_PROTOCOLS = frozenset({"HTTP", "HTTP2", "GRPC", "GRPC-WEB"})
_KNOWN_PROTOCOLS = HTTP_PROTOCOLS | {"HTTPS", "TCP", "TLS", "MONGO", "REDIS", "MYSQL"}
_EMPTY: Mapping[str, str] = MappingProxyType({})
_NO_PORTS: Mapping[str, int] = MappingProxyType({})

Resolution = Literal["STATIC", "DNS", "NONE"]
Location = Literal["MESH_INTERNAL", "MESH_EXTERNAL"]


@dataclass(frozen=True, slots=True)
class ServicePort:
    """One port of a service: its name, number and (upper-case) protocol."""

    name: str
    number: int
    protocol: str = "HTTP"
    target_port: int | None = None

    @property
    def is_http(self) -> bool:
        """True for HTTP, HTTP2, GRPC and GRPC-WEB ports (routed by the HTTP listener)."""
        return self.protocol in HTTP_PROTOCOLS


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One workload instance of a service: its address, port overrides and labels."""

    address: str
    ports: Mapping[str, int] = field(default_factory=lambda: _NO_PORTS)
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    weight: int | None = None
    service_account: str | None = None
    locality: str | None = None

    def port_for(self, port: ServicePort) -> int:
        """The port this endpoint serves ``port`` on: its own mapping, else the service's."""
        return self.ports.get(port.name, port.target_port or port.number)

    def matches(self, selector: Mapping[str, str]) -> bool:
        """True when every label of ``selector`` is on this endpoint (empty selects all)."""
        return all(self.labels.get(key) == value for key, value in selector.items())


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    """A service host with its ports, endpoints and how its endpoints are found."""

    hostname: str
    namespace: str
    ports: tuple[ServicePort, ...]
    endpoints: tuple[Endpoint, ...] = ()
    resolution: Resolution = "NONE"
    location: Location = "MESH_EXTERNAL"
    addresses: tuple[str, ...] = ()
    export_to: tuple[str, ...] = ()
    source: str = ""

    @property
    def uses_eds(self) -> bool:
        """True when Envoy learns the endpoints over EDS (STATIC and NONE resolution)."""
        return self.resolution != "DNS"

    def port(self, number: int) -> ServicePort | None:
        """The port with this number, or None."""
        return next((port for port in self.ports if port.number == number), None)


class ServiceRegistry(Protocol):
    """What Pilot consumes from a registry: the current services (a consistent set)."""

    def services(self) -> tuple[Service, ...]:
        """Every service the registry knows now."""
        ...


def fqdn(host: str, namespace: str) -> str:
    """Istio's host resolution: a name without dots is relative to ``namespace``."""
    if "." in host or host.startswith("*"):
        return host.lower()
    return f"{host}.{namespace}.{DOMAIN_SUFFIX}".lower()


def host_matches(pattern: str, host: str) -> bool:
    """True when ``host`` (possibly a wildcard) is within ``pattern`` (``*``, ``*.x`` or exact)."""
    pattern, host = pattern.lower(), host.lower()
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and host != pattern[1:]
    return host == pattern


def hosts_overlap(first: str, second: str) -> bool:
    """True when some name is matched by both hosts (either may be a wildcard)."""
    return host_matches(first, second) or host_matches(second, first)


def more_specific(first: str, second: str) -> str:
    """The narrower of two overlapping hosts (the non-wildcard, or the longer suffix)."""
    if host_matches(first, second):
        return second
    return first


def services_from_service_entries(resources: Iterable[Resource]) -> tuple[Service, ...]:
    """One :class:`Service` per ServiceEntry host (see the module docstring)."""
    entries = sorted(
        (r for r in resources if isinstance(r.spec, ServiceEntrySpec)),
        key=lambda r: (r.metadata.namespace, r.metadata.name),
    )
    services: list[Service] = []
    for entry in entries:
        spec = entry.spec
        assert isinstance(spec, ServiceEntrySpec)
        ports = tuple(_service_port(port) for port in spec.ports)
        endpoints = tuple(_endpoint(workload) for workload in spec.endpoints)
        for host in dict.fromkeys(fqdn(h, entry.metadata.namespace) for h in spec.hosts):
            services.append(
                Service(
                    hostname=host,
                    namespace=entry.metadata.namespace,
                    ports=ports,
                    endpoints=endpoints,
                    resolution=spec.resolution,
                    location=spec.location,
                    addresses=spec.addresses,
                    export_to=spec.export_to,
                    source=entry.ref,
                )
            )
    return tuple(services)


def _service_port(port: Port) -> ServicePort:
    name = port.name or f"port-{port.number}"
    return ServicePort(
        name=name,
        number=port.number,
        protocol=_protocol(port.protocol, name),
        target_port=port.target_port,
    )


def _protocol(declared: str | None, name: str) -> str:
    """The declared protocol, else Istio's port-name convention (``http-web``), else TCP."""
    if declared:
        return declared.upper()
    prefix = name.partition("-")[0].upper()
    return prefix if prefix in _KNOWN_PROTOCOLS else "TCP"


def _endpoint(workload: WorkloadEntry) -> Endpoint:
    return Endpoint(
        address=workload.address,
        ports=MappingProxyType(dict(workload.ports)),
        labels=MappingProxyType(dict(workload.labels)),
        weight=workload.weight,
        service_account=workload.service_account,
        locality=workload.locality,
    )
