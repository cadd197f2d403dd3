"""The attribute bag of an ALS v3 ``HTTPAccessLogEntry`` and the node that sent it.

The reporting sidecar is known from the stream's ``identifier.node``: its metadata
(``WORKLOAD_NAME``, ``NAMESPACE``, ``LABELS``, written by splitmesh's agent) describes
the destination when the entry was logged by the server's sidecar (``inbound``: the
upstream cluster is ``inbound|port|name|host``) and the source otherwise.

From the entry: ``request.method``/``scheme``/``host`` (authority)/``path``/
``url_path``/``useragent``/``referer``/``id``/``headers`` (the headers Envoy was told to
log, plus the fields above under their header names)/``size`` (body bytes)/
``total_size``/``time``; ``response.code``/``size``/``total_size``/``headers``/
``duration`` (to the last byte sent downstream)/``time``; ``source.ip`` (the downstream
peer, inbound) and ``destination.ip`` (the upstream peer, outbound, or the local address
inbound); ``destination.port``; ``destination.service.host`` from the cluster (or the
authority) and its name and namespace; principals from the TLS certificates' URI SANs
(``connection.mtls`` when the peer presented one); ``context.protocol``;
``context.reporter.kind``; ``context.proxy_error_code`` (Envoy's short response flags,
``-`` when none). A source workload that Envoy's ``x-envoy-downstream-service-cluster``
header names (when logged) fills ``source.workload.*`` on inbound entries.

Building a bag never fails; fields that are absent leave attributes absent. A bag
keeps references to its entry and node metadata; one task uses it at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.data.accesslog.v3 import accesslog_pb2

from services.mixer.adapters.attributes import (
    LazyBag,
    Reader,
    host_without_port,
    ip_of,
    namespace_of_principal,
    parse_cluster,
    parse_query,
    principal_of,
    protocol_of,
    service_parts,
    split_node_cluster,
)
from shared.policy_expr import Value

_FLAGS: Mapping[str, str] = dict(
    (
        ("failed_local_healthcheck", "LH"),
        ("no_healthy_upstream", "UH"),
        ("upstream_request_timeout", "UT"),
        ("local_reset", "LR"),
        ("upstream_remote_reset", "UR"),
        ("upstream_connection_failure", "UF"),
        ("upstream_connection_termination", "UC"),
        ("upstream_overflow", "UO"),
        ("no_route_found", "NR"),
        ("delay_injected", "DI"),
        ("fault_injected", "FI"),
        ("rate_limited", "RL"),
        ("unauthorized_details", "UAEX"),
        ("rate_limit_service_error", "RLSE"),
        ("downstream_connection_termination", "DC"),
        ("upstream_retry_limit_exceeded", "URX"),
        ("stream_idle_timeout", "SI"),
        ("invalid_envoy_request_headers", "IH"),
        ("downstream_protocol_error", "DPE"),
        ("upstream_max_stream_duration_reached", "UMSDR"),
        ("no_filter_config_found", "NFCF"),
        ("duration_timeout", "DT"),
        ("upstream_protocol_error", "UPE"),
        ("no_cluster_found", "NC"),
        ("overload_manager", "OM"),
        ("dns_resolution_failure", "DF"),
        ("downstream_remote_reset", "DR"),
    )
)
"""Envoy's response flag fields → their short codes (``%RESPONSE_FLAGS%``)."""


@dataclass(frozen=True, slots=True)
class Reporter:
    """The sidecar that sent a stream, from its node metadata."""

    workload: str | None = None
    namespace: str | None = None
    labels: Mapping[str, str] | None = None
    cluster: str | None = None

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any], cluster: str) -> Reporter:
        """Read ``WORKLOAD_NAME``, ``NAMESPACE`` and ``LABELS`` (a node cluster fills gaps)."""
        fallback = split_node_cluster(cluster)
        labels = metadata.get("LABELS")
        return cls(
            workload=_str(metadata.get("WORKLOAD_NAME")) or (fallback[0] if fallback else None),
            namespace=_str(metadata.get("NAMESPACE")) or (fallback[1] if fallback else None),
            labels={str(k): str(v) for k, v in labels.items()}
            if isinstance(labels, dict)
            else None,
            cluster=cluster or None,
        )


@dataclass(frozen=True, slots=True)
class LogEntry:
    """An entry and the reporter that logged it."""

    entry: accesslog_pb2.HTTPAccessLogEntry
    reporter: Reporter


LogBag = LazyBag[LogEntry]


def access_log_bag(entry: accesslog_pb2.HTTPAccessLogEntry, reporter: Reporter) -> LogBag:
    """The bag of one entry (see the module docstring)."""
    return LazyBag(LogEntry(entry, reporter), _READERS)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _e(bag: LogBag) -> accesslog_pb2.HTTPAccessLogEntry:
    return bag.source.entry


def _inbound(bag: LogBag) -> bool:
    return bag.get("context.reporter.kind") == "inbound"


def _reporter_kind(bag: LogBag) -> Value | None:
    parsed = parse_cluster(_e(bag).common_properties.upstream_cluster)
    return parsed[0] if parsed else "inbound"


def _cluster_host(bag: LogBag) -> Value | None:
    parsed = parse_cluster(_e(bag).common_properties.upstream_cluster)
    if parsed and parsed[2]:
        return parsed[2]
    return host_without_port(_e(bag).request.authority)


def _port(bag: LogBag) -> Value | None:
    common = _e(bag).common_properties
    parsed = parse_cluster(common.upstream_cluster)
    if parsed and parsed[1]:
        return parsed[1]
    address = common.downstream_local_address if _inbound(bag) else common.upstream_remote_address
    return address.socket_address.port_value or None


def _side(side: str, field: str) -> Reader[LogEntry]:
    """A reporter field for the side it stands for (destination inbound, source outbound)."""

    def read(bag: LogBag) -> Value | None:
        if (side == "destination") != _inbound(bag):
            return None
        value: Value | None = getattr(bag.source.reporter, field)
        return value

    return read


def _source_workload(index: int) -> Reader[LogEntry]:
    def read(bag: LogBag) -> Value | None:
        if not _inbound(bag):
            return _side("source", "workload" if index == 0 else "namespace")(bag)
        headers = _e(bag).request.request_headers
        parts = split_node_cluster(headers.get("x-envoy-downstream-service-cluster"))
        return parts[index] if parts else None

    return read


def _peer_principal(bag: LogBag) -> Value | None:
    certificate = _e(bag).common_properties.tls_properties.peer_certificate_properties
    return next((principal_of(san.uri) for san in certificate.subject_alt_name if san.uri), None)


def _local_principal(bag: LogBag) -> Value | None:
    certificate = _e(bag).common_properties.tls_properties.local_certificate_properties
    return next((principal_of(san.uri) for san in certificate.subject_alt_name if san.uri), None)


def _principal(side: str) -> Reader[LogEntry]:
    def read(bag: LogBag) -> Value | None:
        if (side == "source") == _inbound(bag):
            return _peer_principal(bag)
        return _local_principal(bag)

    return read


def _ip(side: str) -> Reader[LogEntry]:
    def read(bag: LogBag) -> Value | None:
        common = _e(bag).common_properties
        if side == "source":
            address = common.downstream_remote_address
        elif _inbound(bag):
            address = common.downstream_local_address
        else:
            address = common.upstream_remote_address
        return ip_of(address.socket_address.address)

    return read


def _headers(bag: LogBag) -> Value | None:
    request = _e(bag).request
    headers = dict(request.request_headers)
    for name, value in (
        (":authority", request.authority),
        (":path", request.path),
        ("user-agent", request.user_agent),
        ("referer", request.referer),
        ("x-request-id", request.request_id),
    ):
        if value:
            headers.setdefault(name, value)
    method = bag.get("request.method")
    if isinstance(method, str):
        headers.setdefault(":method", method)
    return headers


def _method(bag: LogBag) -> Value | None:
    method = _e(bag).request.request_method
    name: str = base_pb2.RequestMethod.Name(method)
    return name if method else None


def _req_str(field: str) -> Reader[LogEntry]:
    return lambda bag: getattr(_e(bag).request, field) or None


def _start(bag: LogBag) -> datetime | None:
    common = _e(bag).common_properties
    if not common.HasField("start_time"):
        return None
    moment: datetime = common.start_time.ToDatetime(tzinfo=UTC)
    return moment


def _duration(bag: LogBag) -> timedelta | None:
    common = _e(bag).common_properties
    for field in ("time_to_last_downstream_tx_byte", "duration"):
        if common.HasField(field):
            duration: timedelta = getattr(common, field).ToTimedelta()
            return duration
    return None


def _response_time(bag: LogBag) -> Value | None:
    start, duration = _start(bag), _duration(bag)
    return start + duration if start is not None and duration is not None else None


def _response_code(bag: LogBag) -> Value | None:
    response = _e(bag).response
    code: int = response.response_code.value
    return code if response.HasField("response_code") else None


def _flags(bag: LogBag) -> Value | None:
    flags = _e(bag).common_properties.response_flags
    codes = [_FLAGS[field.name] for field, _ in flags.ListFields() if field.name in _FLAGS]
    return ",".join(codes) if codes else "-"


def _service_part(index: int) -> Reader[LogEntry]:
    def read(bag: LogBag) -> Value | None:
        parts = service_parts(bag.get("destination.service.host"))
        return parts[index] if parts else None

    return read


def _response_headers(bag: LogBag) -> Value | None:
    return dict(_e(bag).response.response_headers) or None


def _total(kind: str) -> Reader[LogEntry]:
    def read(bag: LogBag) -> Value | None:
        message = getattr(_e(bag), kind)
        total: int = getattr(message, f"{kind}_headers_bytes") + getattr(
            message, f"{kind}_body_bytes"
        )
        return total

    return read


_READERS: Mapping[str, Reader[LogEntry]] = {
    "context.reporter.kind": _reporter_kind,
    "context.protocol": lambda bag: protocol_of(_e(bag).request.request_headers),
    "context.proxy_error_code": _flags,
    "context.reporter.uid": lambda bag: bag.source.reporter.cluster,
    "source.ip": _ip("source"),
    "source.principal": _principal("source"),
    "source.namespace": lambda bag: (
        namespace_of_principal(bag.get("source.principal")) or bag.get("source.workload.namespace")
    ),
    "source.workload.name": _source_workload(0),
    "source.workload.namespace": _source_workload(1),
    "source.labels": _side("source", "labels"),
    "destination.ip": _ip("destination"),
    "destination.port": _port,
    "destination.principal": _principal("destination"),
    "destination.workload.name": _side("destination", "workload"),
    "destination.workload.namespace": _side("destination", "namespace"),
    "destination.namespace": lambda bag: (
        _side("destination", "namespace")(bag) or bag.get("destination.service.namespace")
    ),
    "destination.labels": _side("destination", "labels"),
    "destination.service.host": _cluster_host,
    "destination.service.name": _service_part(0),
    "destination.service.namespace": _service_part(1),
    "connection.mtls": lambda bag: _peer_principal(bag) is not None,
    "request.method": _method,
    "request.scheme": _req_str("scheme"),
    "request.host": _req_str("authority"),
    "request.path": _req_str("path"),
    "request.url_path": lambda bag: _e(bag).request.path.split("?", 1)[0] or None,
    "request.query_params": lambda bag: parse_query(_e(bag).request.path) or None,
    "request.useragent": _req_str("user_agent"),
    "request.referer": _req_str("referer"),
    "request.id": _req_str("request_id"),
    "request.headers": _headers,
    "request.size": lambda bag: int(_e(bag).request.request_body_bytes),
    "request.total_size": _total("request"),
    "request.time": _start,
    "response.code": _response_code,
    "response.size": lambda bag: int(_e(bag).response.response_body_bytes),
    "response.total_size": _total("response"),
    "response.headers": _response_headers,
    "response.duration": _duration,
    "response.time": _response_time,
}
