"""The Envoy v3 bootstrap a sidecar starts with: who it is and where Pilot is.

:func:`build_bootstrap` returns the bootstrap as a JSON-ready dict (Envoy reads JSON with
``-c``); :func:`write_bootstrap` writes it atomically. The bootstrap holds:

- ``node``: Istio's node id and the metadata Pilot reads (:mod:`sidecar.node`);
- ``dynamic_resources``: ADS over gRPC to Pilot, API v3, state of the world (``GRPC``) or
  incremental (``DELTA_GRPC``), the node sent on the first message only; CDS and LDS come
  over ADS (EDS and RDS follow from what those name);
- ``static_resources``: the cluster ``xds-grpc`` to Pilot over HTTP/2 (``STATIC`` for an
  IP address, ``STRICT_DNS`` for a name), and with ``sds_socket`` the cluster ``sds-grpc``
  to the agent's SDS server on that Unix socket (HTTP/2), which the TLS contexts Pilot
  sends to a proxy with an identity name for secrets ``default`` and ``ROOTCA``;
- ``admin`` on ``127.0.0.1:<admin_port>``, and a downstream connection limit so Envoy does
  not warn about having none.

Pure functions of their arguments; nothing here starts a process or opens a socket.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sidecar.node import WorkloadIdentity

XDS_CLUSTER = "xds-grpc"
SDS_CLUSTER = "sds-grpc"
_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_CONNECTIONS_MONITOR = (
    "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig"
)
_MAX_DOWNSTREAM_CONNECTIONS = 50_000
_HIGH = 100_000  # Istio's circuit breakers for the xds-grpc cluster: effectively none


def build_bootstrap(
    identity: WorkloadIdentity,
    *,
    pilot_host: str,
    pilot_port: int,
    admin_port: int,
    outbound_port: int | None,
    delta: bool = False,
    connect_timeout_s: float = 1.0,
    sds_socket: Path | None = None,
) -> dict[str, Any]:
    """The bootstrap for ``identity`` (see the module docstring)."""
    clusters = [_xds_cluster(pilot_host, pilot_port, connect_timeout_s)]
    if sds_socket is not None:
        clusters.append(_sds_cluster(sds_socket, connect_timeout_s))
    return {
        "node": {
            "id": identity.node_id(),
            "cluster": identity.node_cluster(),
            "metadata": identity.node_metadata(outbound_port),
        },
        "dynamic_resources": {
            "ads_config": {
                "api_type": "DELTA_GRPC" if delta else "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}],
            },
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "static_resources": {"clusters": clusters},
        "admin": {"address": _socket_address("127.0.0.1", admin_port)},
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": f"type.googleapis.com/{_CONNECTIONS_MONITOR}",
                        "max_active_downstream_connections": _MAX_DOWNSTREAM_CONNECTIONS,
                    },
                }
            ]
        },
    }


def write_bootstrap(path: Path, bootstrap: Mapping[str, Any]) -> Path:
    """Write ``bootstrap`` as JSON to ``path`` atomically (via a sibling temp file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(bootstrap, indent=2, sort_keys=True))
    partial.replace(path)
    return path


def _xds_cluster(host: str, port: int, connect_timeout_s: float) -> dict[str, Any]:
    return {
        "name": XDS_CLUSTER,
        "type": "STATIC" if _is_ip(host) else "STRICT_DNS",
        "connect_timeout": f"{connect_timeout_s:g}s",
        "load_assignment": {
            "cluster_name": XDS_CLUSTER,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": _socket_address(host, port)}}]}
            ],
        },
        "typed_extension_protocol_options": _http2_options(),
        "upstream_connection_options": {"tcp_keepalive": {"keepalive_time": 300}},
        "circuit_breakers": {
            "thresholds": [
                {
                    "priority": priority,
                    "max_connections": _HIGH,
                    "max_pending_requests": _HIGH,
                    "max_requests": _HIGH,
                }
                for priority in ("DEFAULT", "HIGH")
            ]
        },
    }


def _sds_cluster(socket_path: Path, connect_timeout_s: float) -> dict[str, Any]:
    endpoint = {"endpoint": {"address": {"pipe": {"path": str(socket_path)}}}}
    return {
        "name": SDS_CLUSTER,
        "type": "STATIC",
        "connect_timeout": f"{connect_timeout_s:g}s",
        "load_assignment": {
            "cluster_name": SDS_CLUSTER,
            "endpoints": [{"lb_endpoints": [endpoint]}],
        },
        "typed_extension_protocol_options": _http2_options(),
    }


def _http2_options() -> dict[str, Any]:
    return {
        _HTTP_OPTIONS: {
            "@type": f"type.googleapis.com/{_HTTP_OPTIONS}",
            "explicit_http_config": {"http2_protocol_options": {}},
        }
    }


def _socket_address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
