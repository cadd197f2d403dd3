"""Istio's standard metrics, built in: what an Istio 1.4 install put in its root namespace.

:func:`standard_telemetry` returns a ``prometheus`` handler, four ``metric`` instances
and the ``promhttp`` rule, as typed objects in ``root_namespace``, ready to be added to
Galley's config (:class:`~services.mixer.core.compiler.CompileOptions` ``extra``; an
object Galley serves under the same name replaces the built-in one). The metrics are
``istio_requests_total``, ``istio_request_duration_milliseconds``,
``istio_request_bytes`` and ``istio_response_bytes`` with Istio's labels. Pure; returns
fresh values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.mixer.core.compiler import Versioned
from services.mixer.ports import HANDLERS, INSTANCES, RULES
from shared.config.policy import HandlerSpec, InstanceSpec, RuleSpec

_VERSION = "builtin-1"
_REPORTER_IS_SOURCE = '(context.reporter.kind | "inbound") == "outbound"'
DIMENSIONS: Mapping[str, str] = {
    "reporter": f'conditional({_REPORTER_IS_SOURCE}, "source", "destination")',
    "source_workload": 'source.workload.name | "unknown"',
    "source_workload_namespace": 'source.workload.namespace | "unknown"',
    "source_principal": 'source.principal | "unknown"',
    "source_app": 'source.labels["app"] | "unknown"',
    "source_version": 'source.labels["version"] | "unknown"',
    "destination_workload": 'destination.workload.name | "unknown"',
    "destination_workload_namespace": 'destination.workload.namespace | "unknown"',
    "destination_principal": 'destination.principal | "unknown"',
    "destination_app": 'destination.labels["app"] | "unknown"',
    "destination_version": 'destination.labels["version"] | "unknown"',
    "destination_service": 'destination.service.host | "unknown"',
    "destination_service_name": 'destination.service.name | "unknown"',
    "destination_service_namespace": 'destination.service.namespace | "unknown"',
    "request_protocol": 'api.protocol | context.protocol | "unknown"',
    "response_code": "response.code | 200",
    "response_flags": 'context.proxy_error_code | "-"',
    "connection_security_policy": (
        f'conditional({_REPORTER_IS_SOURCE}, "unknown", '
        'conditional(connection.mtls | false, "mutual_tls", "none"))'
    ),
}
"""The dimensions (labels) of every standard metric, as Istio 1.4 defined them."""

_MS_BUCKETS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000]
_METRICS: tuple[tuple[str, str, str, str, dict[str, Any]], ...] = (
    ("requestcount", "requests_total", "COUNTER", "1", {}),
    (
        "requestduration",
        "request_duration_milliseconds",
        "DISTRIBUTION",
        'response.duration | "0ms"',
        {"explicitBuckets": {"bounds": _MS_BUCKETS}},
    ),
    (
        "requestsize",
        "request_bytes",
        "DISTRIBUTION",
        "request.size | 0",
        {"exponentialBuckets": {"numFiniteBuckets": 8, "scale": 1, "growthFactor": 10}},
    ),
    (
        "responsesize",
        "response_bytes",
        "DISTRIBUTION",
        "response.size | 0",
        {"exponentialBuckets": {"numFiniteBuckets": 8, "scale": 1, "growthFactor": 10}},
    ),
)
_MATCH = (
    '(context.protocol == "http" || context.protocol == "grpc") && '
    '(match((request.useragent | "-"), "kube-probe*") == false) && '
    '(match((request.useragent | "-"), "Prometheus*") == false)'
)


def standard_telemetry(root_namespace: str) -> Mapping[str, Mapping[str, Versioned]]:
    """The built-in objects by collection, then by ``namespace/name``."""
    ns = root_namespace
    instances: dict[str, Versioned] = {}
    metrics: list[dict[str, Any]] = []
    for instance, metric, kind, value, buckets in _METRICS:
        spec = InstanceSpec.model_validate(
            {
                "compiledTemplate": "metric",
                "params": {
                    "value": value,
                    "dimensions": dict(DIMENSIONS),
                    "monitoredResourceType": '"UNSPECIFIED"',
                },
            }
        )
        instances[f"{ns}/{instance}"] = Versioned(_VERSION, spec)
        entry: dict[str, Any] = {
            "name": metric,
            "instanceName": f"{instance}.instance.{ns}",
            "kind": kind,
            "labelNames": list(DIMENSIONS),
        }
        if buckets:
            entry["buckets"] = buckets
        metrics.append(entry)
    handler = HandlerSpec.model_validate(
        {"compiledAdapter": "prometheus", "params": {"metrics": metrics}}
    )
    rule = RuleSpec.model_validate(
        {
            "match": _MATCH,
            "actions": [{"handler": "prometheus", "instances": [name for name, *_ in _METRICS]}],
        }
    )
    return {
        HANDLERS: {f"{ns}/prometheus": Versioned(_VERSION, handler)},
        INSTANCES: instances,
        RULES: {f"{ns}/promhttp": Versioned(_VERSION, rule)},
    }
