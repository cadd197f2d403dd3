"""The workload a sidecar speaks for, and how it is written into Envoy's ``Node``.

A :class:`WorkloadIdentity` (name, namespace, service account, labels, the inbound ports
the sidecar owns, and whether it has a certificate for mutual TLS) becomes the Envoy node
id (Istio's form, ``sidecar~127.0.0.1~catalog-v1.shop~shop.svc.cluster.local``) and the
node metadata that Pilot reads (``SPLITMESH_TLS: "true"`` only for a proxy with an
identity: Pilot then configures mutual TLS that relies on the agent's SDS cluster).
The metadata key names below are a wire contract with Pilot
(``services/pilot/core/model.py`` reads them): the sidecar must not import a service, so
they are repeated here; change both sides together.

Parsing helpers turn the agent's textual settings (``app=catalog``,
``18081:28081:catalog.shop.svc.cluster.local``) into values and raise ``ValueError``
with a message naming the bad text. Everything here is an immutable value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

# Wire contract: node metadata keys Pilot reads (services/pilot/core/model.py).
META_NAMESPACE = "NAMESPACE"
META_WORKLOAD_NAME = "WORKLOAD_NAME"
META_SERVICE_ACCOUNT = "SERVICE_ACCOUNT"
META_LABELS = "LABELS"
META_OUTBOUND_PORT = "SPLITMESH_OUTBOUND_PORT"
META_INBOUND = "SPLITMESH_INBOUND"
META_TLS = "SPLITMESH_TLS"

ProxyType = Literal["sidecar", "router"]
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class InboundPort:
    """A mesh endpoint port the sidecar binds, forwarding to the app on ``app_port``."""

    port: int
    app_port: int
    service: str
    name: str = "http"
    protocol: str = "HTTP"

    @classmethod
    def parse(cls, text: str) -> InboundPort:
        """Parse ``port:app_port:service[:name[:protocol]]``."""
        parts = text.strip().split(":")
        if not 3 <= len(parts) <= 5 or not all(parts):
            raise ValueError(
                f"inbound port {text!r} is not 'port:app_port:service[:name[:protocol]]'"
            )
        port, app_port = (_port_number(part, text) for part in parts[:2])
        name = parts[3] if len(parts) > 3 else "http"
        protocol = parts[4].upper() if len(parts) > 4 else "HTTP"
        return cls(port=port, app_port=app_port, service=parts[2], name=name, protocol=protocol)

    def to_metadata(self) -> dict[str, object]:
        """The JSON object Pilot reads from ``SPLITMESH_INBOUND``."""
        return {
            "port": self.port,
            "app_port": self.app_port,
            "service": self.service,
            "name": self.name,
            "protocol": self.protocol,
        }


@dataclass(frozen=True, slots=True)
class WorkloadIdentity:
    """Who a proxy is: what Pilot needs to pick its configuration."""

    name: str
    namespace: str
    service_account: str = "default"
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    inbound: tuple[InboundPort, ...] = ()
    proxy_type: ProxyType = "sidecar"
    ip: str = "127.0.0.1"
    tls: bool = False  # the agent serves a workload certificate to Envoy over SDS

    def node_id(self) -> str:
        """Istio's node id: ``<type>~<ip>~<name>.<namespace>~<namespace>.svc.cluster.local``."""
        namespace = self.namespace
        return f"{self.proxy_type}~{self.ip}~{self.name}.{namespace}~{namespace}.svc.cluster.local"

    def node_cluster(self) -> str:
        """The Envoy ``node.cluster`` (Istio uses ``<workload>.<namespace>``)."""
        return f"{self.name}.{self.namespace}"

    def node_metadata(self, outbound_port: int | None) -> dict[str, object]:
        """The node metadata Pilot reads (see the module docstring)."""
        metadata: dict[str, object] = {
            META_NAMESPACE: self.namespace,
            META_WORKLOAD_NAME: self.name,
            META_SERVICE_ACCOUNT: self.service_account,
            META_LABELS: dict(self.labels),
            META_INBOUND: [port.to_metadata() for port in self.inbound],
        }
        if outbound_port is not None:
            metadata[META_OUTBOUND_PORT] = outbound_port
        if self.tls:
            metadata[META_TLS] = "true"
        return metadata


def parse_labels(items: tuple[str, ...]) -> dict[str, str]:
    """Parse ``("app=catalog", "version=v1")`` into a mapping; keys must be unique."""
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"label {item!r} is not 'key=value'")
        if key in labels:
            raise ValueError(f"label {key!r} is given twice")
        labels[key] = value.strip()
    return labels


def parse_address(text: str) -> tuple[str, int]:
    """Parse ``host:port`` (``[v6]:port`` for IPv6 literals)."""
    host, sep, port = text.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host:
        raise ValueError(f"address {text!r} is not 'host:port'")
    return host, _port_number(port, text)


def _port_number(text: str, context: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"{text!r} in {context!r} is not a port (1-65535)")
    return int(text)
