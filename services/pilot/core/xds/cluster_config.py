"""The outbound clusters and load assignments a scope plans: shareable across namespaces.

:func:`generate_clusters` builds a :class:`ClusterConfig` from an
:class:`~services.pilot.core.xds.plan.OutboundScope`: every scope with the same
``cluster_digest`` at one snapshot gets an equal one (usually every namespace of a mesh
without Sidecars), so it is built once. After an endpoints-only change
:func:`refresh_clusters` rebuilds only the load assignments of services whose endpoints
moved and keeps every other message (the same objects, so their packed forms can be
reused); its result equals :func:`generate_clusters` at the new snapshot. Pure functions;
the messages returned are never mutated afterwards. Errors: none raised on config Galley
accepts; problems go to ``report`` (default: logged).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from google.protobuf.message import Message

from services.pilot.core.snapshot import MeshSnapshot
from services.pilot.core.xds.clusters import build_clusters
from services.pilot.core.xds.endpoints import build_endpoints
from services.pilot.core.xds.http_route import RouteMemo
from services.pilot.core.xds.plan import OutboundScope, PlannedCluster, plan_outbound
from services.pilot.core.xds.problems import Problem, Problems, ProblemSink
from services.pilot.core.xds.tls import secure_clusters


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterConfig:
    """Outbound clusters and their load assignments: shared by every scope that plans them.

    ``key`` is the snapshot version and the :attr:`OutboundScope.cluster_digest` of the
    scopes served. ``routes`` memoizes VirtualService routes for their route configs.
    """

    key: str
    clusters: Mapping[str, Message]
    endpoints: Mapping[str, Message]
    plan: Mapping[str, PlannedCluster]
    problems: tuple[Problem, ...]
    routes: RouteMemo = field(compare=False, repr=False)


def generate_clusters(
    snapshot: MeshSnapshot, outbound: OutboundScope, *, report: ProblemSink | None = None
) -> ClusterConfig:
    """Outbound clusters and load assignments for every scope with ``outbound``'s digest."""
    problems = Problems(report)
    plan = plan_outbound(outbound, problems)
    clusters = build_clusters(plan, snapshot.mesh, problems)
    secure_clusters(clusters, plan, snapshot, outbound.tls, problems)
    endpoints = build_endpoints(plan, problems)
    return ClusterConfig(
        key=f"{snapshot.version}|{outbound.cluster_digest}",
        clusters=frozen_by_name(clusters),
        endpoints=frozen_by_name(endpoints),
        plan=MappingProxyType(plan),
        problems=tuple(problems.found),
        routes=RouteMemo(),
    )


def refresh_clusters(
    snapshot: MeshSnapshot, earlier: ClusterConfig, *, report: ProblemSink | None = None
) -> ClusterConfig:
    """``earlier`` with the endpoints of ``snapshot`` (see the module docstring).

    ``earlier`` must come from :func:`generate_clusters` (or this function) at a snapshot
    whose ``config_digest`` equals ``snapshot``'s.
    """
    problems = Problems(report)
    plan: dict[str, PlannedCluster] = {}
    for name, planned in earlier.plan.items():
        service = snapshot.service(planned.service.hostname) or planned.service
        moved = service.endpoints != planned.service.endpoints
        plan[name] = replace(planned, service=service) if moved else planned

    def unchanged(name: str, planned: PlannedCluster) -> Message | None:
        return earlier.endpoints.get(name) if earlier.plan[name] is planned else None

    endpoints = build_endpoints(plan, problems, reuse=unchanged)
    return ClusterConfig(
        key=f"{snapshot.version}|{earlier.key.partition('|')[2]}",
        clusters=earlier.clusters,
        endpoints=frozen_by_name(endpoints),
        plan=MappingProxyType(plan),
        problems=tuple(dict.fromkeys((*earlier.problems, *problems.found))),
        routes=RouteMemo(),
    )


def frozen_by_name(resources: Mapping[str, Message]) -> Mapping[str, Message]:
    """``resources`` sorted by name, read-only."""
    return MappingProxyType(dict(sorted(resources.items())))
