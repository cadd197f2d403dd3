"""Gateway (networking.istio.io/v1alpha3): a load balancer at the edge of the mesh.

Which ports a gateway proxy (chosen by ``selector``) listens on, for which hosts, with
which TLS. Field names follow Istio's API reference. Immutable values, safe to share
between tasks; Galley's validation checks protocols, hosts and TLS rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field

from shared.config.base import SpecModel
from shared.config.networking_types import Port

TLSProtocolVersion = Literal["TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"]


class ServerTLSSettings(SpecModel):
    """TLS a gateway server terminates (or passes through), or an HTTP→HTTPS redirect."""

    https_redirect: bool = False
    mode: Literal["PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL"] = (
        "PASSTHROUGH"
    )
    server_certificate: str | None = None
    private_key: str | None = None
    ca_certificates: str | None = None
    credential_name: str | None = None
    subject_alt_names: tuple[str, ...] = ()
    verify_certificate_spki: tuple[str, ...] = ()
    verify_certificate_hash: tuple[str, ...] = ()
    min_protocol_version: TLSProtocolVersion | None = None
    max_protocol_version: TLSProtocolVersion | None = None
    cipher_suites: tuple[str, ...] = ()


class Server(SpecModel):
    """One listener of the gateway: a port, the hosts it serves, and its TLS."""

    port: Port | None = None
    bind: str | None = None
    hosts: tuple[str, ...] = ()
    tls: ServerTLSSettings | None = None
    default_endpoint: str | None = None


class GatewaySpec(SpecModel):
    """The servers of the gateway workloads whose labels match ``selector``."""

    servers: tuple[Server, ...] = ()
    selector: Mapping[str, str] = Field(default_factory=dict)
