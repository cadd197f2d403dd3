"""Typed ``params`` of Mixer's compiled-in adapters (Istio 1.4's adapter config protos).

A handler's ``params`` travel as a free-form mapping; :func:`adapter_params_model` gives
the model that reads them for a known adapter (``None`` for an unknown one), so Galley
can validate them and Mixer can use them typed::

    model = adapter_params_model(handler.adapter_name)
    params = model.model_validate(handler.params or {})  # raises pydantic.ValidationError

As protobuf JSON did for Mixer, enum fields take the name or the number
(``severity_levels: {warning: 1}`` in Istio's docs), and fields take their proto names
too (``instance_name`` as well as ``instanceName``). The models check shape, types and
enums; value rules (positive amounts, regexes that compile, CIDRs that parse) are
Galley's. Instances are immutable and safe to share.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, get_args

from pydantic import BeforeValidator

from shared.config.base import Duration, SpecModel


def _enum_number(literal: Any) -> Callable[[object], object]:
    """Map a proto enum number to its name (the Literal lists names in number order)."""
    names = get_args(literal)

    def to_name(value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
            return names[value]
        return value

    return to_name


_LogLevel = Literal["INFO", "WARNING", "ERROR"]
LogLevel = Annotated[_LogLevel, BeforeValidator(_enum_number(_LogLevel))]
_EntryType = Literal["STRINGS", "CASE_INSENSITIVE_STRINGS", "IP_ADDRESSES", "REGEX"]
EntryType = Annotated[_EntryType, BeforeValidator(_enum_number(_EntryType))]
_QuotaAlgorithm = Literal["FIXED_WINDOW", "ROLLING_WINDOW"]
QuotaAlgorithm = Annotated[_QuotaAlgorithm, BeforeValidator(_enum_number(_QuotaAlgorithm))]
_MetricKind = Literal["UNSPECIFIED", "GAUGE", "COUNTER", "DISTRIBUTION"]
MetricKind = Annotated[_MetricKind, BeforeValidator(_enum_number(_MetricKind))]
_LogStream = Literal["STDOUT", "STDERR", "FILE", "ROTATED_FILE"]
LogStream = Annotated[_LogStream, BeforeValidator(_enum_number(_LogStream))]


class RpcStatus(SpecModel):
    """A google.rpc.Status: numeric code (0-16), message and details."""

    code: int = 0
    message: str = ""
    details: tuple[Mapping[str, Any], ...] | None = None


class DenierParams(SpecModel):
    """``denier``: always answers with ``status``; the answer may be cached."""

    status: RpcStatus | None = None
    valid_duration: Duration | None = None
    valid_use_count: int | None = None


class ListcheckerParams(SpecModel):
    """``listchecker``: is a value in (whitelist) or not in (blacklist) a list."""

    provider_url: str | None = None
    refresh_interval: Duration | None = None
    ttl: Duration | None = None
    caching_interval: Duration | None = None
    caching_use_count: int | None = None
    overrides: tuple[str, ...] | None = None
    entry_type: EntryType = "STRINGS"
    blacklist: bool = False


class QuotaOverride(SpecModel):
    """A limit for the requests whose dimensions match ``dimensions``."""

    dimensions: Mapping[str, str] | None = None
    max_amount: int = 0


class QuotaLimit(SpecModel):
    """A named quota: ``maxAmount`` per ``validDuration``, and overrides (first match wins)."""

    name: str = ""
    max_amount: int = 0
    valid_duration: Duration | None = None
    overrides: tuple[QuotaOverride, ...] | None = None


class MemquotaOverride(QuotaOverride):
    """A memquota override may also change the window."""

    valid_duration: Duration | None = None


class MemquotaQuota(QuotaLimit):
    """A memquota quota: its overrides may change the window."""

    overrides: tuple[MemquotaOverride, ...] | None = None


class MemquotaParams(SpecModel):
    """``memquota``: quotas counted in Mixer's memory (one Mixer only)."""

    quotas: tuple[MemquotaQuota, ...] | None = None
    min_deduplication_duration: Duration | None = None


class RedisquotaQuota(QuotaLimit):
    """A redisquota quota: fixed or rolling window, and its overrides."""

    bucket_duration: Duration | None = None
    rate_limit_algorithm: QuotaAlgorithm = "FIXED_WINDOW"


class RedisquotaParams(SpecModel):
    """``redisquota``: quotas counted in Redis, shared by every Mixer replica."""

    quotas: tuple[RedisquotaQuota, ...] | None = None
    redis_server_url: str = ""
    connection_pool_size: int | None = None


class LinearBuckets(SpecModel):
    """``numFiniteBuckets`` buckets of ``width`` starting at ``offset``."""

    num_finite_buckets: int = 0
    width: float = 0.0
    offset: float = 0.0


class ExponentialBuckets(SpecModel):
    """Buckets ``scale * growthFactor**i``."""

    num_finite_buckets: int = 0
    growth_factor: float = 0.0
    scale: float = 0.0


class ExplicitBuckets(SpecModel):
    """Buckets with the given upper bounds."""

    bounds: tuple[float, ...] | None = None


class BucketsDefinition(SpecModel):
    """Exactly one of linear, exponential or explicit buckets."""

    linear_buckets: LinearBuckets | None = None
    exponential_buckets: ExponentialBuckets | None = None
    explicit_buckets: ExplicitBuckets | None = None


class PrometheusMetric(SpecModel):
    """One Prometheus metric fed by a ``metric`` instance."""

    name: str = ""
    namespace: str = ""
    instance_name: str = ""
    description: str = ""
    kind: MetricKind = "UNSPECIFIED"
    buckets: BucketsDefinition | None = None
    label_names: tuple[str, ...] | None = None


class MetricsExpirationPolicy(SpecModel):
    """When unused metric series are dropped."""

    metrics_expiry_duration: Duration | None = None
    expiry_check_interval_duration: Duration | None = None


class PrometheusParams(SpecModel):
    """``prometheus``: metrics exposed for scraping."""

    metrics: tuple[PrometheusMetric, ...] | None = None
    metrics_expiration_policy: MetricsExpirationPolicy | None = None


class StdioParams(SpecModel):
    """``stdio``: log entries and metrics written as lines to a stream or file."""

    log_stream: LogStream = "STDOUT"
    severity_levels: Mapping[str, LogLevel] | None = None
    metric_level: LogLevel = "INFO"
    output_level: LogLevel = "INFO"
    output_as_json: bool = False
    output_path: str = ""
    max_megabytes_before_rotation: int | None = None
    max_days_before_rotation: int | None = None
    max_rotated_files: int | None = None


class OpentelemetryParams(SpecModel):
    """``opentelemetry``: metrics and spans exported over OTLP/gRPC to ``endpoint``."""

    endpoint: str = ""
    insecure: bool = False
    service_name: str = ""
    headers: Mapping[str, str] | None = None
    export_timeout: Duration | None = None


_ADAPTER_PARAMS: Mapping[str, type[SpecModel]] = {
    "denier": DenierParams,
    "listchecker": ListcheckerParams,
    "memquota": MemquotaParams,
    "redisquota": RedisquotaParams,
    "prometheus": PrometheusParams,
    "stdio": StdioParams,
    "opentelemetry": OpentelemetryParams,
}

KNOWN_ADAPTERS: tuple[str, ...] = tuple(_ADAPTER_PARAMS)
"""The compiled-in adapters a handler may name, in documentation order."""


def adapter_params_model(adapter: str) -> type[SpecModel] | None:
    """The params model of a known adapter, or None when the adapter is unknown."""
    return _ADAPTER_PARAMS.get(adapter)
