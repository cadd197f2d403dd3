"""The proxy as Pilot sees it, and the Envoy configuration generated for it.

:class:`Proxy` is parsed from the Envoy ``Node`` (id and metadata) that an ADS stream
opens with; :func:`parse_proxy` raises :class:`InvalidNodeError` naming what is wrong
(the ADS adapter turns it into an error on that stream only). :class:`ProxyConfig` is
what ``xds.generate.generate(snapshot, proxy)`` returns: Envoy v3 messages by name,
per resource type. Both are immutable values, safe to share between tasks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf.message import Message

# Node metadata keys written by the agent (sidecar/) and read here.
META_NAMESPACE = "NAMESPACE"
META_WORKLOAD_NAME = "WORKLOAD_NAME"
META_SERVICE_ACCOUNT = "SERVICE_ACCOUNT"
META_LABELS = "LABELS"
META_OUTBOUND_PORT = "SPLITMESH_OUTBOUND_PORT"
META_INBOUND = "SPLITMESH_INBOUND"
META_TLS = "SPLITMESH_TLS"  # "true": the agent serves a workload certificate over SDS

CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT_TYPE = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
TYPE_URLS = (CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE)
"""The order Pilot pushes in (CDS, EDS, LDS, RDS), so no route names a missing cluster."""
MESSAGE_TYPES: Mapping[str, type[Message]] = MappingProxyType(
    {
        CLUSTER_TYPE: cluster_pb2.Cluster,
        ENDPOINT_TYPE: endpoint_pb2.ClusterLoadAssignment,
        LISTENER_TYPE: listener_pb2.Listener,
        ROUTE_TYPE: route_pb2.RouteConfiguration,
    }
)
"""The message each type URL names (to decode a packed resource)."""

_NODE_ID = re.compile(r"^(sidecar|router)~([^~]+)~([^~]+)\.([^~.]+)~([^~]+)$")
_EMPTY: Mapping[str, str] = MappingProxyType({})


class InvalidNodeError(ValueError):
    """The Envoy node id or metadata cannot describe a proxy."""


@dataclass(frozen=True, slots=True)
class InboundPort:
    """A port the proxy serves for its workload: bind ``port``, forward to ``app_port``."""

    port: int
    app_port: int
    service: str
    name: str = "http"
    protocol: str = "HTTP"


@dataclass(frozen=True, slots=True)
class Proxy:
    """One connected Envoy: who it is and which ports it owns."""

    id: str
    type: Literal["sidecar", "router"]
    ip: str
    workload_name: str
    namespace: str
    service_account: str = "default"
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    outbound_port: int | None = None
    inbound: tuple[InboundPort, ...] = ()
    tls: bool = False  # the agent serves SDS ``default``/``ROOTCA`` over cluster ``sds-grpc``


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """Envoy resources for one proxy, by type URL, then by resource name."""

    resources: Mapping[str, Mapping[str, Message]]

    def of_type(self, type_url: str) -> Mapping[str, Message]:
        """Resources of one type (empty mapping when none)."""
        return self.resources.get(type_url, _EMPTY_MESSAGES)


_EMPTY_MESSAGES: Mapping[str, Message] = MappingProxyType({})


def node_id(kind: str, ip: str, workload: str, namespace: str) -> str:
    """Istio's node id form: ``sidecar~10.0.0.1~name.namespace~namespace.svc.cluster.local``."""
    return f"{kind}~{ip}~{workload}.{namespace}~{namespace}.svc.cluster.local"


def parse_proxy(node_id_text: str, metadata: Mapping[str, Any]) -> Proxy:
    """Build a :class:`Proxy` from an Envoy node id and its metadata (a JSON-like dict)."""
    match = _NODE_ID.match(node_id_text)
    if match is None:
        raise InvalidNodeError(
            f"node id {node_id_text!r} is not of the form "
            "'sidecar~<ip>~<workload>.<namespace>~<namespace>.svc.cluster.local'"
        )
    kind, ip, workload, id_namespace, _ = match.groups()
    namespace = metadata.get(META_NAMESPACE, id_namespace)
    if not isinstance(namespace, str) or not namespace:
        raise InvalidNodeError(f"node metadata {META_NAMESPACE} must be a non-empty string")
    labels = metadata.get(META_LABELS, {})
    if not isinstance(labels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise InvalidNodeError(f"node metadata {META_LABELS} must map strings to strings")
    return Proxy(
        id=node_id_text,
        type="router" if kind == "router" else "sidecar",
        ip=ip,
        workload_name=str(metadata.get(META_WORKLOAD_NAME, workload)),
        namespace=namespace,
        service_account=str(metadata.get(META_SERVICE_ACCOUNT, "default")),
        labels=MappingProxyType(dict(labels)),
        outbound_port=_optional_port(metadata.get(META_OUTBOUND_PORT), META_OUTBOUND_PORT),
        inbound=_inbound_ports(metadata.get(META_INBOUND, [])),
        tls=_flag(metadata.get(META_TLS, False), META_TLS),
    )


def _flag(value: object, key: str) -> bool:
    """A boolean from JSON-ish metadata: true/false or the strings "true"/"false"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidNodeError(f"node metadata {key} must be true or false, got {value!r}")


def _optional_port(value: object, key: str) -> int | None:
    return None if value is None else _port(value, key)


def _port(value: object, key: str) -> int:
    """A port from JSON-ish metadata: an int, a whole float (protobuf Struct) or digits."""
    if isinstance(value, bool):
        port = None
    elif isinstance(value, int):
        port = value
    elif (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and value.isdigit()
    ):
        port = int(value)
    else:
        port = None
    if port is None or not 1 <= port <= 65535:
        raise InvalidNodeError(f"node metadata {key} must be a port 1-65535, got {value!r}")
    return port


def _inbound_ports(value: object) -> tuple[InboundPort, ...]:
    if not isinstance(value, list | tuple):
        raise InvalidNodeError(f"node metadata {META_INBOUND} must be a list")
    ports: list[InboundPort] = []
    for position, item in enumerate(value):
        key = f"{META_INBOUND}[{position}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("service"), str):
            raise InvalidNodeError(f"node metadata {key} must be an object with a service")
        ports.append(
            InboundPort(
                port=_port(item.get("port"), f"{key}.port"),
                app_port=_port(item.get("app_port"), f"{key}.app_port"),
                service=item["service"],
                name=str(item.get("name", "http")),
                protocol=str(item.get("protocol", "HTTP")).upper(),
            )
        )
    return tuple(ports)
