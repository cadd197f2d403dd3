"""The attribute bag of an ext_authz v3 ``CheckRequest`` (Istio's vocabulary).

Read from ``attributes`` (``AttributeContext``): ``source``/``destination`` peers
(address → ``*.ip``/``destination.port``; principal → ``*.principal`` without
``spiffe://``; labels → ``*.labels``; service → ``*.workload.name``/``namespace`` when it
is a node cluster ``<workload>.<namespace>``, which is what Envoy puts there: the local
cluster for the destination, ``x-envoy-downstream-service-cluster`` for the source),
``request.http`` (``request.headers``/``path``/``url_path``/``query_params``/``host``/
``method``/``scheme``/``size``/``id``/``useragent``/``referer``, ``context.protocol``),
``request.time`` and the TLS session (``connection.requested_server_name``).
``connection.mtls`` is true when the source presented an identity.
``destination.service.host`` is the request's host without port, and its
``<name>.<namespace>.svc`` form gives ``destination.service.name``/``namespace`` and
``destination.namespace``. ``source.namespace`` comes from the principal.
``context.reporter.kind`` is ``inbound`` (checks are made by the server's sidecar).

``context_extensions`` whose keys are attribute names override all of this (typed per
:func:`~services.mixer.adapters.attributes.typed_value`; maps as JSON objects): that
is how Pilot tells Mixer what Envoy cannot (``destination.service.host`` of a route,
``context.reporter.kind``, workload labels). Missing headers or peers simply leave
attributes absent: building a bag never fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2

from services.mixer.adapters.attributes import (
    LazyBag,
    Reader,
    host_without_port,
    ip_of,
    namespace_of_principal,
    parse_query,
    principal_of,
    protocol_of,
    service_parts,
    split_node_cluster,
    typed_overrides,
)
from shared.policy_expr import Value

CheckBag = LazyBag[external_auth_pb2.CheckRequest]


def check_bag(request: external_auth_pb2.CheckRequest) -> CheckBag:
    """The bag of ``request`` (see the module docstring)."""
    extensions = request.attributes.context_extensions
    overrides = typed_overrides(extensions) if extensions else None
    return LazyBag(request, _READERS, overrides)


def _attrs(bag: CheckBag) -> attribute_context_pb2.AttributeContext:
    return bag.source.attributes


def _headers(bag: CheckBag) -> Mapping[str, str]:
    headers: Mapping[str, str] = _attrs(bag).request.http.headers
    return headers


def _header(name: str) -> Reader[external_auth_pb2.CheckRequest]:
    return lambda bag: _headers(bag).get(name) or None


def _http_str(field: str) -> Reader[external_auth_pb2.CheckRequest]:
    return lambda bag: getattr(_attrs(bag).request.http, field) or None


def _workload(side: str, index: int) -> Reader[external_auth_pb2.CheckRequest]:
    def read(bag: CheckBag) -> Value | None:
        parts = split_node_cluster(getattr(_attrs(bag), side).service)
        return parts[index] if parts else None

    return read


def _service_part(index: int) -> Reader[external_auth_pb2.CheckRequest]:
    def read(bag: CheckBag) -> Value | None:
        parts = service_parts(bag.get("destination.service.host"))
        return parts[index] if parts else None

    return read


def _labels(side: str) -> Reader[external_auth_pb2.CheckRequest]:
    def read(bag: CheckBag) -> Value | None:
        labels = getattr(_attrs(bag), side).labels
        return dict(labels) if labels else None

    return read


def _size(bag: CheckBag) -> Value | None:
    size = _attrs(bag).request.http.size
    return size if size >= 0 and _attrs(bag).request.HasField("http") else None


def _time(bag: CheckBag) -> Value | None:
    request = _attrs(bag).request
    if not request.HasField("time"):
        return None
    moment: datetime = request.time.ToDatetime(tzinfo=UTC)
    return moment


def _destination_namespace(bag: CheckBag) -> Value | None:
    return bag.get("destination.service.namespace") or bag.get("destination.workload.namespace")


def _mtls(bag: CheckBag) -> Value | None:
    source = _attrs(bag).source
    return bool(source.principal or source.certificate)


_READERS: Mapping[str, Reader[external_auth_pb2.CheckRequest]] = {
    "source.ip": lambda bag: ip_of(_attrs(bag).source.address.socket_address.address),
    "source.principal": lambda bag: principal_of(_attrs(bag).source.principal),
    "source.user": lambda bag: principal_of(_attrs(bag).source.principal),
    "source.namespace": lambda bag: (
        namespace_of_principal(bag.get("source.principal")) or bag.get("source.workload.namespace")
    ),
    "source.labels": _labels("source"),
    "source.workload.name": _workload("source", 0),
    "source.workload.namespace": _workload("source", 1),
    "destination.ip": lambda bag: ip_of(_attrs(bag).destination.address.socket_address.address),
    "destination.port": lambda bag: (
        _attrs(bag).destination.address.socket_address.port_value or None
    ),
    "destination.principal": lambda bag: principal_of(_attrs(bag).destination.principal),
    "destination.labels": _labels("destination"),
    "destination.workload.name": _workload("destination", 0),
    "destination.workload.namespace": _workload("destination", 1),
    "destination.service.host": lambda bag: host_without_port(_attrs(bag).request.http.host),
    "destination.service.name": _service_part(0),
    "destination.service.namespace": _service_part(1),
    "destination.namespace": _destination_namespace,
    "request.headers": _headers,
    "request.id": _http_str("id"),
    "request.path": _http_str("path"),
    "request.url_path": lambda bag: _attrs(bag).request.http.path.split("?", 1)[0] or None,
    "request.query_params": lambda bag: parse_query(_attrs(bag).request.http.path) or None,
    "request.host": _http_str("host"),
    "request.method": _http_str("method"),
    "request.scheme": _http_str("scheme"),
    "request.size": _size,
    "request.time": _time,
    "request.useragent": _header("user-agent"),
    "request.referer": _header("referer"),
    "connection.mtls": _mtls,
    "connection.requested_server_name": lambda bag: _attrs(bag).tls_session.sni or None,
    "context.protocol": lambda bag: protocol_of(_headers(bag)),
    "context.reporter.kind": lambda _bag: "inbound",
}
