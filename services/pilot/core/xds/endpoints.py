"""EDS: one ClusterLoadAssignment per EDS cluster of the plan.

Endpoints are the service's registry endpoints whose labels match the cluster's subset
selector, on the endpoint's own port for the service port's name (else the service
port), grouped by locality (``region/zone/subzone``), with the entry's weight and, for
an endpoint labelled ``security.istio.io/tlsMode: istio``, the auto-mTLS match metadata
of :func:`~services.pilot.core.xds.tls.endpoint_metadata`. STRICT_DNS
clusters reuse :func:`load_assignment` for their inline assignment; a DNS service without
endpoints resolves its own hostname. Pure functions; the returned messages are new
(except earlier ones that :func:`build_endpoints`'s ``reuse`` hands back).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from google.protobuf.message import Message

from services.pilot.core.registry import Endpoint, ServicePort
from services.pilot.core.xds import protos
from services.pilot.core.xds.plan import PlannedCluster
from services.pilot.core.xds.problems import Problems
from services.pilot.core.xds.tls import endpoint_metadata


def build_endpoints(
    plan: Mapping[str, PlannedCluster],
    problems: Problems,
    *,
    reuse: Callable[[str, PlannedCluster], Message | None] | None = None,
) -> dict[str, Message]:
    """The load assignments of every EDS cluster in ``plan``, by cluster name.

    ``reuse``, when given, may return an earlier assignment that is still right for a
    planned cluster (it is kept as is); None builds a new one.
    """
    assignments: dict[str, Message] = {}
    for name, cluster in plan.items():
        if cluster.discovery != "EDS":
            continue
        earlier = reuse(name, cluster) if reuse is not None else None
        if earlier is not None:
            assignments[name] = earlier
            continue
        with problems.guard(f"{cluster.service.source} cluster {name}"):
            assignments[name] = load_assignment(cluster)
    return assignments


def load_assignment(cluster: PlannedCluster) -> endpoint_pb2.ClusterLoadAssignment:
    """The endpoints of one planned cluster."""
    service = cluster.service
    endpoints: Iterable[Endpoint] = service.endpoints
    if service.resolution == "DNS" and not service.endpoints:
        endpoints = (Endpoint(address=service.hostname),)
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=cluster.name,
        endpoints=locality_endpoints(endpoints, cluster.port, cluster.selector),
    )


def locality_endpoints(
    endpoints: Iterable[Endpoint], port: ServicePort, selector: Mapping[str, str]
) -> list[endpoint_components_pb2.LocalityLbEndpoints]:
    """Matching endpoints grouped by locality, localities in sorted order."""
    groups: dict[str, list[endpoint_components_pb2.LbEndpoint]] = {}
    for endpoint in endpoints:
        if not endpoint.matches(selector):
            continue
        lb_endpoint = endpoint_components_pb2.LbEndpoint(
            endpoint=endpoint_components_pb2.Endpoint(
                address=protos.address(endpoint.address, endpoint.port_for(port))
            )
        )
        if endpoint.weight:
            lb_endpoint.load_balancing_weight.value = endpoint.weight
        metadata = endpoint_metadata(endpoint.labels)
        if metadata is not None:
            lb_endpoint.metadata.CopyFrom(metadata)
        groups.setdefault(endpoint.locality or "", []).append(lb_endpoint)
    return [
        endpoint_components_pb2.LocalityLbEndpoints(
            locality=_locality(locality) if locality else None, lb_endpoints=members
        )
        for locality, members in sorted(groups.items())
    ]


def _locality(text: str) -> base_pb2.Locality:
    region, _, rest = text.partition("/")
    zone, _, sub_zone = rest.partition("/")
    return base_pb2.Locality(region=region, zone=zone, sub_zone=sub_zone)
