"""Istio 1.4's attribute vocabulary: every attribute name an expression may read, typed.

Taken from Istio's attribute vocabulary page and the ``istio-proxy`` and ``kubernetes``
attribute manifests Mixer shipped. An expression naming an attribute outside
:data:`ATTRIBUTES` (or the vocabulary handed to ``compile_expression``) does not compile.
Immutable; safe to share.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from shared.policy_expr.types import ValueType

_S = ValueType.STRING
_I = ValueType.INT64
_B = ValueType.BOOL
_T = ValueType.TIMESTAMP
_D = ValueType.DURATION
_IP = ValueType.IP_ADDRESS
_M = ValueType.STRING_MAP

_WORKLOAD_SIDE: dict[str, ValueType] = {
    "uid": _S,
    "ip": _IP,
    "labels": _M,
    "metadata": _M,
    "name": _S,
    "namespace": _S,
    "principal": _S,
    "owner": _S,
    "serviceAccount": _S,
    "user": _S,
    "workload.uid": _S,
    "workload.name": _S,
    "workload.namespace": _S,
    "cluster.id": _S,
}

_DESTINATION_ONLY: dict[str, ValueType] = {
    "port": _I,
    "container.name": _S,
    "container.image": _S,
    "service.uid": _S,
    "service.name": _S,
    "service.namespace": _S,
    "service.host": _S,
}

_REQUEST: dict[str, ValueType] = {
    "request.headers": _M,
    "request.id": _S,
    "request.path": _S,
    "request.url_path": _S,
    "request.query_params": _M,
    "request.host": _S,
    "request.method": _S,
    "request.reason": _S,
    "request.referer": _S,
    "request.scheme": _S,
    "request.size": _I,
    "request.total_size": _I,
    "request.time": _T,
    "request.useragent": _S,
    "request.api_key": _S,
    "request.auth.principal": _S,
    "request.auth.audiences": _S,
    "request.auth.presenter": _S,
    "request.auth.claims": _M,
    "request.auth.raw_claims": _S,
    "response.headers": _M,
    "response.size": _I,
    "response.total_size": _I,
    "response.time": _T,
    "response.duration": _D,
    "response.code": _I,
    "response.grpc_status": _S,
    "response.grpc_message": _S,
}

_CONNECTION_AND_CONTEXT: dict[str, ValueType] = {
    "connection.id": _S,
    "connection.event": _S,
    "connection.received.bytes": _I,
    "connection.received.bytes_total": _I,
    "connection.sent.bytes": _I,
    "connection.sent.bytes_total": _I,
    "connection.duration": _D,
    "connection.mtls": _B,
    "connection.requested_server_name": _S,
    "context.protocol": _S,
    "context.time": _T,
    "context.timestamp": _T,
    "context.proxy_error_code": _S,
    "context.reporter.kind": _S,
    "context.reporter.uid": _S,
    "api.service": _S,
    "api.version": _S,
    "api.operation": _S,
    "api.protocol": _S,
}


def _build() -> Mapping[str, ValueType]:
    table: dict[str, ValueType] = {}
    for side in ("source", "destination"):
        table.update({f"{side}.{name}": kind for name, kind in _WORKLOAD_SIDE.items()})
    table.update({f"destination.{name}": kind for name, kind in _DESTINATION_ONLY.items()})
    table.update(_REQUEST)
    table.update(_CONNECTION_AND_CONTEXT)
    return MappingProxyType(dict(sorted(table.items())))


ATTRIBUTES: Mapping[str, ValueType] = _build()
"""Attribute name → type, Istio 1.4's vocabulary (read-only)."""
