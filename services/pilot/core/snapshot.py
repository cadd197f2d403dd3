"""An immutable snapshot of mesh config plus registry: the only input of xDS generation.

:meth:`MeshSnapshot.build` takes Galley-accepted resources and the registry's services,
and builds every index once: VirtualServices by gateway (``mesh`` or ``namespace/name``),
DestinationRules merged per namespace and host, Gateways, Sidecars by namespace, services
by host. The snapshot is never mutated afterwards, so any number of tasks or threads may
read it. Building never raises on accepted config; oddities are kept in ``problems``.

Deterministic merge rules, as Istio documents them ("Split large virtual services and
destination rules into multiple resources", https://istio.io/latest/docs/ops/
best-practices/traffic-management/#split-virtual-services). splitmesh has no creation
timestamps, so "first" means first by ``(namespace, name)``:

- VirtualServices bound to a *gateway* for the same host are merged: each fragment keeps
  its rule order, fragments follow in ``(namespace, name)`` order, and catch-all rules
  (no ``match``) move to the end. "Host merging is not supported in sidecars": for the
  ``mesh`` gateway the first VirtualService claiming a host wins and the later ones are
  reported as shadowed.
- DestinationRules for the same host (within one namespace) are merged: unique subsets
  are concatenated, the first definition of a subset wins, and the first top-level
  ``trafficPolicy`` is used (later ones are discarded and reported) — Istio's
  ``mergeDestinationRule``. Lookup follows Istio's path: the proxy's namespace, the
  service's namespace, the root namespace, then any namespace exporting a rule.
- Two registry services with the same hostname: the first (by namespace, then source)
  is kept, the others reported.

Change detection for pushes: ``config_digest`` hashes everything except the endpoints of
EDS services (STATIC/NONE resolution); ``endpoints_digest`` hashes exactly those
endpoints. DNS services' endpoints are part of ``config_digest`` because they are inlined
in their STRICT_DNS clusters. :meth:`MeshSnapshot.change_from` compares two snapshots.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from services.pilot.core.registry import Endpoint, Service, fqdn, host_matches
from services.pilot.core.xds.problems import Problem
from shared.config import Resource
from shared.config.mesh import MeshConfigSpec
from shared.config.networking import (
    DestinationRuleSpec,
    GatewaySpec,
    ServiceEntrySpec,
    VirtualServiceSpec,
)
from shared.config.networking_destinationrule import Subset, TrafficPolicy

MESH_GATEWAY = "mesh"
ChangeKind = Literal["none", "endpoints", "full"]


@dataclass(frozen=True, slots=True)
class BoundVirtualService:
    """A VirtualService with its hosts resolved and its gateways as ``ns/name`` keys."""

    resource: Resource
    spec: VirtualServiceSpec
    hosts: tuple[str, ...]
    gateways: frozenset[str]

    @property
    def namespace(self) -> str:
        """The namespace the VirtualService lives in (short hosts resolve there)."""
        return self.resource.metadata.namespace


@dataclass(frozen=True, slots=True)
class DestinationPolicy:
    """The DestinationRule(s) of one host in one namespace, merged as Istio does."""

    host: str
    namespace: str
    traffic_policy: TrafficPolicy | None
    subsets: tuple[Subset, ...]
    export_to: tuple[str, ...]
    sources: tuple[str, ...]

    def subset(self, name: str) -> Subset | None:
        """The subset with this name, or None."""
        return next((subset for subset in self.subsets if subset.name == name), None)


def gateway_key(reference: str, namespace: str) -> str:
    """``mesh``, or the ``namespace/name`` a gateway reference in ``namespace`` means."""
    if reference == MESH_GATEWAY:
        return MESH_GATEWAY
    if "/" in reference:
        return reference
    if "." in reference:  # legacy FQDN form: name.namespace.svc.cluster.local
        name, _, rest = reference.partition(".")
        return f"{rest.partition('.')[0]}/{name}"
    return f"{namespace}/{reference}"


def is_exported(export_to: Sequence[str], owner: str, viewer: str, default: Sequence[str]) -> bool:
    """True when an object in namespace ``owner`` is visible from namespace ``viewer``."""
    for value in export_to or default:
        if value in ("*", viewer) or (value == "." and owner == viewer):
            return True
    return False


def selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """True when every selector label is on the workload (an empty selector matches all)."""
    return all(labels.get(key) == value for key, value in selector.items())


@dataclass(frozen=True, slots=True)
class _RuleTable:
    exact: Mapping[str, DestinationPolicy]
    wildcards: tuple[DestinationPolicy, ...]  # longest host first

    def lookup(self, host: str) -> DestinationPolicy | None:
        found = self.exact.get(host)
        if found is not None:
            return found
        return next((rule for rule in self.wildcards if host_matches(rule.host, host)), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class MeshSnapshot:
    """Config and registry at one version, indexed for generation (see module docstring)."""

    version: str
    resources: Mapping[str, tuple[Resource, ...]]
    services: tuple[Service, ...]
    mesh: MeshConfigSpec
    config_digest: str
    endpoints_digest: str
    problems: tuple[Problem, ...]
    uses_source_matching: bool
    _services_by_host: Mapping[str, Service]
    _virtual_services: Mapping[str, tuple[BoundVirtualService, ...]]
    _rules: Mapping[str, _RuleTable]
    _sidecars: Mapping[str, tuple[Resource, ...]]

    @classmethod
    def build(
        cls, resources: Iterable[Resource], services: Iterable[Service], *, version: str
    ) -> MeshSnapshot:
        """Index ``resources`` (Galley-accepted) and ``services`` (from a registry)."""
        problems: list[Problem] = []
        by_kind: dict[str, list[Resource]] = defaultdict(list)
        for resource in sorted(resources, key=lambda r: (r.kind.kind, r.metadata.full_name)):
            by_kind[resource.kind.kind].append(resource)
        kept = _unique_services(services, problems)
        meshes = [r.spec for r in by_kind["MeshConfig"] if isinstance(r.spec, MeshConfigSpec)]
        mesh = meshes[0] if meshes else MeshConfigSpec()
        bound = _bind_virtual_services(by_kind["VirtualService"], problems)
        sidecars: dict[str, list[Resource]] = defaultdict(list)
        for sidecar in by_kind["Sidecar"]:
            sidecars[sidecar.metadata.namespace].append(sidecar)
        config_digest, endpoints_digest = _digests(by_kind, kept, mesh)
        rules = _rule_tables(by_kind["DestinationRule"], problems)
        return cls(
            version=version,
            resources={kind: tuple(items) for kind, items in by_kind.items() if items},
            services=kept,
            mesh=mesh,
            config_digest=config_digest,
            endpoints_digest=endpoints_digest,
            problems=tuple(problems),
            uses_source_matching=any(_uses_source_matching(vs.spec) for vs in bound),
            _services_by_host={service.hostname: service for service in kept},
            _virtual_services=_by_gateway(bound),
            _rules=rules,
            _sidecars={ns: tuple(items) for ns, items in sidecars.items()},
        )

    def of_kind(self, kind: str) -> tuple[Resource, ...]:
        """The resources of one kind (``"Gateway"``), sorted by namespace and name."""
        return self.resources.get(kind, ())

    def service(self, hostname: str) -> Service | None:
        """The service with this (fully qualified) hostname, or None."""
        return self._services_by_host.get(hostname)

    def virtual_services(self, gateway: str = MESH_GATEWAY) -> tuple[BoundVirtualService, ...]:
        """VirtualServices bound to ``mesh`` or to gateway ``namespace/name``, in order."""
        return self._virtual_services.get(gateway, ())

    def sidecars(self, namespace: str) -> tuple[Resource, ...]:
        """The Sidecar resources of a namespace, by name."""
        return self._sidecars.get(namespace, ())

    def gateways_for(self, labels: Mapping[str, str]) -> tuple[Resource, ...]:
        """The Gateways whose selector matches a gateway workload's labels."""
        return tuple(
            gateway
            for gateway in self.of_kind("Gateway")
            if isinstance(gateway.spec, GatewaySpec)
            and selector_matches(gateway.spec.selector, labels)
        )

    def destination_rule(
        self, host: str, *, proxy_namespace: str, service_namespace: str
    ) -> DestinationPolicy | None:
        """The merged DestinationRule that applies to ``host`` for a proxy, or None."""
        default = self.mesh.default_destination_rule_export_to
        first = (proxy_namespace, service_namespace, self.mesh.root_namespace)
        for namespace in _unique(first, self._rules):
            table = self._rules.get(namespace)
            rule = table.lookup(host) if table is not None else None
            if rule is not None and (
                namespace == proxy_namespace
                or is_exported(rule.export_to, namespace, proxy_namespace, default)
            ):
                return rule
        return None

    def change_from(self, previous: MeshSnapshot | None) -> ChangeKind:
        """What a push must carry from ``previous`` to this snapshot."""
        if previous is None or previous.config_digest != self.config_digest:
            return "full"
        if previous.endpoints_digest != self.endpoints_digest:
            return "endpoints"
        return "none"


def _unique(first: Sequence[str], rest: Iterable[str]) -> Iterator[str]:
    """``first`` then ``rest``, each name once, lazily (most lookups end in ``first``)."""
    seen = dict.fromkeys(first)
    yield from seen
    yield from (name for name in rest if name not in seen)


def _unique_services(services: Iterable[Service], problems: list[Problem]) -> tuple[Service, ...]:
    kept: dict[str, Service] = {}
    for service in sorted(services, key=lambda s: (s.namespace, s.source, s.hostname)):
        first = kept.get(service.hostname)
        if first is None:
            kept[service.hostname] = service
        else:
            problems.append(
                Problem(
                    service.source or service.hostname,
                    f"host {service.hostname} is already defined by {first.source}; ignored",
                )
            )
    return tuple(sorted(kept.values(), key=lambda s: s.hostname))


def _bind_virtual_services(
    resources: Sequence[Resource], problems: list[Problem]
) -> list[BoundVirtualService]:
    bound: list[BoundVirtualService] = []
    mesh_owner: dict[str, str] = {}
    for resource in resources:
        spec = resource.spec
        if not isinstance(spec, VirtualServiceSpec):
            continue
        namespace = resource.metadata.namespace
        item = BoundVirtualService(
            resource=resource,
            spec=spec,
            hosts=tuple(dict.fromkeys(fqdn(host, namespace) for host in spec.hosts)),
            gateways=frozenset(gateway_key(g, namespace) for g in spec.gateways or (MESH_GATEWAY,)),
        )
        bound.append(item)
        if MESH_GATEWAY not in item.gateways:
            continue
        for host in item.hosts:
            owner = mesh_owner.setdefault(host, resource.ref)
            if owner != resource.ref:
                problems.append(
                    Problem(
                        resource.ref,
                        f"host {host} is already routed by {owner} for sidecars; Istio does "
                        "not merge VirtualServices in sidecars, so this one is shadowed there",
                    )
                )
    return bound


def _by_gateway(bound: Sequence[BoundVirtualService]) -> dict[str, tuple[BoundVirtualService, ...]]:
    index: dict[str, list[BoundVirtualService]] = defaultdict(list)
    for item in bound:
        for gateway in sorted(item.gateways):
            index[gateway].append(item)
    return {gateway: tuple(items) for gateway, items in index.items()}


def _uses_source_matching(spec: VirtualServiceSpec) -> bool:
    return any(
        match.source_labels or match.source_namespace is not None
        for route in spec.http
        for match in route.match
    )


def _rule_tables(rules: Sequence[Resource], problems: list[Problem]) -> dict[str, _RuleTable]:
    merged: dict[str, dict[str, DestinationPolicy]] = defaultdict(dict)
    for resource in rules:  # sorted by namespace/name: the first rule is the "oldest"
        spec = resource.spec
        if not isinstance(spec, DestinationRuleSpec):
            continue
        namespace = resource.metadata.namespace
        host = fqdn(spec.host, namespace)
        first = merged[namespace].get(host)
        merged[namespace][host] = (
            DestinationPolicy(
                host=host,
                namespace=namespace,
                traffic_policy=spec.traffic_policy,
                subsets=spec.subsets,
                export_to=spec.export_to,
                sources=(resource.ref,),
            )
            if first is None
            else _merge_rule(first, resource, spec, problems)
        )
    return {
        namespace: _RuleTable(
            exact={h: r for h, r in table.items() if not h.startswith("*")},
            wildcards=tuple(
                sorted(
                    (r for h, r in table.items() if h.startswith("*")),
                    key=lambda r: (-len(r.host), r.host),
                )
            ),
        )
        for namespace, table in merged.items()
    }


def _merge_rule(
    first: DestinationPolicy,
    resource: Resource,
    spec: DestinationRuleSpec,
    problems: list[Problem],
) -> DestinationPolicy:
    known = {subset.name for subset in first.subsets}
    for subset in spec.subsets:
        if subset.name in known:
            problems.append(
                Problem(
                    resource.ref,
                    f"subset {subset.name!r} of {first.host} is already "
                    f"defined by {', '.join(first.sources)}; this definition is ignored",
                )
            )
    if first.traffic_policy is not None and spec.traffic_policy is not None:
        problems.append(
            Problem(
                resource.ref,
                f"top-level trafficPolicy for {first.host} is already set by "
                f"{first.sources[0]}; this one is ignored",
            )
        )
    return DestinationPolicy(
        host=first.host,
        namespace=first.namespace,
        traffic_policy=first.traffic_policy or spec.traffic_policy,
        subsets=first.subsets + tuple(s for s in spec.subsets if s.name not in known),
        export_to=first.export_to or spec.export_to,
        sources=(*first.sources, resource.ref),
    )


def _digests(
    by_kind: Mapping[str, Sequence[Resource]], services: Sequence[Service], mesh: MeshConfigSpec
) -> tuple[str, str]:
    config: list[Any] = [mesh.to_wire()]
    config.extend(
        (kind, resource.metadata.full_name, resource.content_version())
        for kind, items in sorted(by_kind.items())
        if kind not in ("ServiceEntry", "MeshConfig")
        for resource in items
    )
    config.extend(
        (entry.metadata.full_name, list(entry.spec.subject_alt_names))
        for entry in by_kind.get("ServiceEntry", ())
        if isinstance(entry.spec, ServiceEntrySpec)
    )
    endpoints: list[Any] = []
    for service in services:
        shape = {
            "host": service.hostname,
            "namespace": service.namespace,
            "ports": [[p.name, p.number, p.protocol, p.target_port] for p in service.ports],
            "resolution": service.resolution,
            "location": service.location,
            "addresses": list(service.addresses),
            "exportTo": list(service.export_to),
            # Clusters check peer SANs against these, so they are config, not endpoints.
            "serviceAccounts": sorted({e.service_account or "" for e in service.endpoints}),
        }
        described = [_endpoint_shape(endpoint) for endpoint in service.endpoints]
        if service.uses_eds:
            endpoints.append([service.hostname, described])
        else:
            shape["endpoints"] = described
        config.append(shape)
    return _hash(config), _hash(endpoints)


def _endpoint_shape(endpoint: Endpoint) -> list[Any]:
    return [
        endpoint.address,
        sorted(endpoint.ports.items()),
        sorted(endpoint.labels.items()),
        endpoint.weight,
        endpoint.service_account,
        endpoint.locality,
    ]


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]
