"""Cross-resource analysis (``splitmesh analyze``), like ``istioctl analyze``.

:func:`analyze` looks at a set of individually valid resources together and reports
what only shows across objects:

- a VirtualService naming a Gateway that does not exist;
- a route (or mirror) to a subset that no DestinationRule for that host defines;
- two VirtualServices claiming the same host for the same gateway (Istio merges
  them in creation order; the later ones' routes are shadowed);
- an AuthorizationPolicy whose selector matches no known workload (warning);
- a Mixer rule naming a handler or instance that does not exist.

Hosts are resolved as Istio does: a short name is relative to the namespace of the
object that wrote it (``reviews`` in ``shop`` is ``reviews.shop.svc.cluster.local``).
Workloads are known from ServiceEntry endpoint labels (the local-mode registry).
Pure and deterministic: the same resources give the same issues in the same order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from services.galley.core.validation.report import Report
from shared.config import ConfigIssue, Resource
from shared.config.networking import DestinationRuleSpec, ServiceEntrySpec, VirtualServiceSpec
from shared.config.policy import RuleSpec
from shared.config.security import AuthorizationPolicySpec

DOMAIN_SUFFIX = "svc.cluster.local"
MESH_GATEWAY = "mesh"


def fqdn(host: str, namespace: str) -> str:
    """Istio's host resolution: short names are relative to ``namespace``."""
    if "." in host or host == "*" or host.startswith("*"):
        return host
    return f"{host}.{namespace}.{DOMAIN_SUFFIX}"


def analyze(resources: Sequence[Resource]) -> list[ConfigIssue]:
    """Every cross-resource issue of ``resources`` (see the module docstring)."""
    index = _Index.build(resources)
    issues: list[ConfigIssue] = []
    for resource in index.of_kind("VirtualService"):
        report = Report(resource)
        _check_gateways(resource, index, report)
        _check_subsets(resource, index, report)
        issues.extend(report.issues)
    issues.extend(_conflicting_hosts(index))
    for resource in index.of_kind("AuthorizationPolicy"):
        report = Report(resource)
        _check_policy_selector(resource, index, report)
        issues.extend(report.issues)
    for resource in index.of_kind("rule"):
        report = Report(resource)
        _check_rule_references(resource, index, report)
        issues.extend(report.issues)
    return issues


@dataclass(frozen=True)
class _Index:
    by_kind: Mapping[str, tuple[Resource, ...]]
    subsets_by_host: Mapping[str, frozenset[str]]
    workload_labels: Mapping[str, tuple[Mapping[str, str], ...]]

    @classmethod
    def build(cls, resources: Sequence[Resource]) -> _Index:
        by_kind: dict[str, list[Resource]] = defaultdict(list)
        for resource in sorted(resources, key=lambda r: (r.kind.kind, r.metadata.full_name)):
            by_kind[resource.kind.kind].append(resource)
        subsets: dict[str, set[str]] = defaultdict(set)
        for rule in by_kind["DestinationRule"]:
            assert isinstance(rule.spec, DestinationRuleSpec)
            host = fqdn(rule.spec.host, rule.metadata.namespace)
            subsets[host].update(subset.name for subset in rule.spec.subsets)
        workloads: dict[str, list[Mapping[str, str]]] = defaultdict(list)
        for entry in by_kind["ServiceEntry"]:
            assert isinstance(entry.spec, ServiceEntrySpec)
            workloads[entry.metadata.namespace].extend(e.labels for e in entry.spec.endpoints)
        return cls(
            by_kind={kind: tuple(items) for kind, items in by_kind.items()},
            subsets_by_host={host: frozenset(names) for host, names in subsets.items()},
            workload_labels={ns: tuple(labels) for ns, labels in workloads.items()},
        )

    def of_kind(self, kind: str) -> tuple[Resource, ...]:
        return self.by_kind.get(kind, ())

    def names(self, kind: str) -> frozenset[tuple[str, str]]:
        return frozenset((r.metadata.namespace, r.metadata.name) for r in self.of_kind(kind))


def _virtual_service(resource: Resource) -> VirtualServiceSpec:
    assert isinstance(resource.spec, VirtualServiceSpec)
    return resource.spec


def _gateway_ref(reference: str, namespace: str) -> tuple[str, str]:
    if "/" in reference:
        ns, _, name = reference.partition("/")
        return ns, name
    return namespace, reference


def _check_gateways(resource: Resource, index: _Index, report: Report) -> None:
    known = index.names("Gateway")
    spec = _virtual_service(resource)
    namespace = resource.metadata.namespace
    for position, gateway in enumerate(spec.gateways):
        if gateway == MESH_GATEWAY:
            continue
        reference = _gateway_ref(gateway, namespace)
        if reference not in known:
            report.error(
                f"spec.gateways[{position}]",
                f"gateway {gateway!r} not found (no Gateway {'/'.join(reference)})",
                code="ReferencedResourceNotFound",
            )


def _check_subsets(resource: Resource, index: _Index, report: Report) -> None:
    spec = _virtual_service(resource)
    namespace = resource.metadata.namespace
    for route_at, route in enumerate(spec.http):
        targets = [
            (f"spec.http[{route_at}].route[{i}].destination", d.destination)
            for i, d in enumerate(route.route)
        ]
        if route.mirror is not None:
            targets.append((f"spec.http[{route_at}].mirror", route.mirror))
        for path, destination in targets:
            if destination.subset is None:
                continue
            host = fqdn(destination.host, namespace)
            if destination.subset not in index.subsets_by_host.get(host, frozenset()):
                report.error(
                    f"{path}.subset",
                    f"subset {destination.subset!r} is not defined by any DestinationRule "
                    f"for host {host}",
                    code="ReferencedResourceNotFound",
                )


def _conflicting_hosts(index: _Index) -> list[ConfigIssue]:
    claims: dict[tuple[str, str], list[Resource]] = defaultdict(list)
    for resource in index.of_kind("VirtualService"):
        spec = _virtual_service(resource)
        namespace = resource.metadata.namespace
        scopes = dict.fromkeys(
            MESH_GATEWAY if gateway == MESH_GATEWAY else "/".join(_gateway_ref(gateway, namespace))
            for gateway in spec.gateways or (MESH_GATEWAY,)
        )
        for scope in scopes:
            for host in dict.fromkeys(fqdn(h, namespace) for h in spec.hosts):
                claims[(scope, host)].append(resource)
    issues: list[ConfigIssue] = []
    for (scope, host), owners in sorted(claims.items()):
        if len(owners) < 2:
            continue
        names = ", ".join(owner.metadata.full_name for owner in owners)
        for owner in owners[1:]:
            report = Report(owner)
            at = next(
                i
                for i, h in enumerate(_virtual_service(owner).hosts)
                if fqdn(h, owner.metadata.namespace) == host
            )
            report.error(
                f"spec.hosts[{at}]",
                f"host {host} on gateway {scope!r} is claimed by several VirtualServices "
                f"({names}); Istio merges them and shadows later routes",
                code="ConflictingVirtualServiceHosts",
            )
            issues.extend(report.issues)
    return issues


def _check_policy_selector(resource: Resource, index: _Index, report: Report) -> None:
    assert isinstance(resource.spec, AuthorizationPolicySpec)
    selector = resource.spec.selector
    if selector is None or not selector.match_labels:
        return
    wanted = selector.match_labels.items()
    candidates = index.workload_labels.get(resource.metadata.namespace, ())
    if not any(wanted <= labels.items() for labels in candidates):
        report.warning(
            "spec.selector.matchLabels",
            f"selector {dict(selector.match_labels)} matches no workload in namespace "
            f"{resource.metadata.namespace}",
            code="NoMatchingWorkloadsFound",
        )


def _mixer_ref(reference: str, namespace: str, kind_words: Iterable[str]) -> tuple[str, str]:
    """``name``, ``name.namespace`` or the old ``name.kind.namespace`` form."""
    parts = reference.split(".")
    if len(parts) >= 3 and parts[1] in kind_words:
        return ".".join(parts[2:]), parts[0]
    if len(parts) == 2:
        return parts[1], parts[0]
    return namespace, reference


def _check_rule_references(resource: Resource, index: _Index, report: Report) -> None:
    assert isinstance(resource.spec, RuleSpec)
    handlers = index.names("handler")
    instances = index.names("instance")
    namespace = resource.metadata.namespace
    for at, action in enumerate(resource.spec.actions or ()):
        if action.handler and _mixer_ref(action.handler, namespace, ("handler",)) not in handlers:
            report.error(
                f"spec.actions[{at}].handler",
                f"handler {action.handler!r} not found",
                code="ReferencedResourceNotFound",
            )
        for i, instance in enumerate(action.instances or ()):
            if _mixer_ref(instance, namespace, ("instance",)) not in instances:
                report.error(
                    f"spec.actions[{at}].instances[{i}]",
                    f"instance {instance!r} not found",
                    code="ReferencedResourceNotFound",
                )
