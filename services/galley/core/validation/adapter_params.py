"""A handler's ``params`` read as its adapter's typed params, then checked like Mixer did.

:func:`check_handler_params` turns every typing problem into an issue under
``spec.params`` (``spec.params.quotas[0].maxAmount``), then applies each adapter's own
rules: positive quota amounts and windows, list entries that parse as the declared
entry type, Prometheus names, a Redis address. Records into the :class:`Report`; never
raises on any params mapping.
"""

from __future__ import annotations

import itertools
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from services.galley.core.validation.common import (
    check_host_port,
    check_ip_or_cidr,
    check_positive_duration,
    check_regex,
)
from services.galley.core.validation.report import Report
from shared.config.errors import format_path
from shared.config.policy_adapters import (
    BucketsDefinition,
    DenierParams,
    ListcheckerParams,
    MemquotaOverride,
    MemquotaParams,
    OpentelemetryParams,
    PrometheusParams,
    QuotaLimit,
    RedisquotaParams,
    StdioParams,
    adapter_params_model,
)

_ZERO = timedelta(0)
_MAX_RPC_CODE = 16
_DEFAULT_REFRESH = timedelta(seconds=60)
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def check_handler_params(
    report: Report, path: str, adapter: str, params: Mapping[str, Any] | None
) -> None:
    """Check ``params`` against the known ``adapter``'s model and rules."""
    model = adapter_params_model(adapter)
    if model is None:
        return
    try:
        typed = model.model_validate(dict(params or {}))
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            message = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
            report.error(format_path((path, *error["loc"])), message)
        return
    match typed:
        case DenierParams():
            _check_denier(report, path, typed)
        case ListcheckerParams():
            _check_listchecker(report, path, typed)
        case MemquotaParams():
            _check_quotas(report, path, typed.quotas)
            _check_duration(
                report, f"{path}.minDeduplicationDuration", typed.min_deduplication_duration
            )
        case RedisquotaParams():
            _check_redisquota(report, path, typed)
        case PrometheusParams():
            _check_prometheus(report, path, typed)
        case StdioParams():
            _check_stdio(report, path, typed)
        case OpentelemetryParams():
            _check_address(report, f"{path}.endpoint", typed.endpoint)
            _check_duration(report, f"{path}.exportTimeout", typed.export_timeout)


def _check_denier(report: Report, path: str, params: DenierParams) -> None:
    if params.status is not None and not 0 <= params.status.code <= _MAX_RPC_CODE:
        report.error(
            f"{path}.status.code",
            f"{params.status.code} is not a google.rpc.Code (0..{_MAX_RPC_CODE})",
        )
    _check_duration(report, f"{path}.validDuration", params.valid_duration, allow_zero=True)
    _check_count(report, f"{path}.validUseCount", params.valid_use_count)


def _check_listchecker(report: Report, path: str, params: ListcheckerParams) -> None:
    if params.provider_url:
        url = urllib.parse.urlparse(params.provider_url)
        if not url.scheme or not url.netloc:
            report.error(f"{path}.providerUrl", "must be a URL with a scheme and a host")
    refresh = params.refresh_interval
    if refresh is not None and refresh < timedelta(seconds=1):
        report.error(f"{path}.refreshInterval", "must be at least 1s")
    effective_refresh = refresh or _DEFAULT_REFRESH
    if params.ttl is not None and params.ttl <= effective_refresh:
        report.error(
            f"{path}.ttl",
            f"must be longer than refreshInterval ({effective_refresh.total_seconds()}s)",
        )
    _check_duration(report, f"{path}.cachingInterval", params.caching_interval, allow_zero=True)
    _check_count(report, f"{path}.cachingUseCount", params.caching_use_count)
    for index, entry in enumerate(params.overrides or ()):
        entry_path = f"{path}.overrides[{index}]"
        if not entry:
            report.error(entry_path, "empty list entry")
        elif params.entry_type == "IP_ADDRESSES":
            check_ip_or_cidr(report, entry_path, entry)
        elif params.entry_type == "REGEX":
            check_regex(report, entry_path, entry)


def _check_quotas(report: Report, path: str, quotas: Sequence[QuotaLimit] | None) -> None:
    """Shared by memquota and redisquota: named quotas with positive limits and windows."""
    if not quotas:
        report.error(f"{path}.quotas", "at least one quota is required")
        return
    seen: set[str] = set()
    for index, quota in enumerate(quotas):
        quota_path = f"{path}.quotas[{index}]"
        if not quota.name:
            report.error(f"{quota_path}.name", "required: the quota instance this limits")
        elif quota.name in seen:
            report.error(f"{quota_path}.name", f"duplicate quota name {quota.name!r}")
        seen.add(quota.name)
        _check_amount(report, f"{quota_path}.maxAmount", quota.max_amount)
        if quota.valid_duration is None:
            report.error(f"{quota_path}.validDuration", "required: the window of the limit")
        else:
            check_positive_duration(report, f"{quota_path}.validDuration", quota.valid_duration)
        for number, override in enumerate(quota.overrides or ()):
            override_path = f"{quota_path}.overrides[{number}]"
            if not override.dimensions:
                report.error(f"{override_path}.dimensions", "an override needs dimensions")
            _check_amount(report, f"{override_path}.maxAmount", override.max_amount)
            if isinstance(override, MemquotaOverride):
                window = override.valid_duration
                _check_duration(report, f"{override_path}.validDuration", window)


def _check_redisquota(report: Report, path: str, params: RedisquotaParams) -> None:
    _check_address(report, f"{path}.redisServerUrl", params.redis_server_url)
    _check_count(report, f"{path}.connectionPoolSize", params.connection_pool_size)
    _check_quotas(report, path, params.quotas)
    for index, quota in enumerate(params.quotas or ()):
        if quota.rate_limit_algorithm != "ROLLING_WINDOW":
            continue
        bucket_path = f"{path}.quotas[{index}].bucketDuration"
        bucket = quota.bucket_duration
        if bucket is None or bucket <= _ZERO:
            report.error(bucket_path, "ROLLING_WINDOW needs a positive bucketDuration")
        elif quota.valid_duration is not None and bucket >= quota.valid_duration:
            report.error(bucket_path, "must be shorter than validDuration")


def _check_prometheus(report: Report, path: str, params: PrometheusParams) -> None:
    seen: set[str] = set()
    for index, metric in enumerate(params.metrics or ()):
        metric_path = f"{path}.metrics[{index}]"
        full_name = f"{metric.namespace}_{metric.name}" if metric.namespace else metric.name
        if not _METRIC_NAME.match(full_name):
            report.error(f"{metric_path}.name", f"{full_name!r} is not a Prometheus metric name")
        elif full_name in seen:
            report.error(f"{metric_path}.name", f"duplicate metric {full_name!r}")
        seen.add(full_name)
        if not metric.instance_name:
            report.error(f"{metric_path}.instanceName", "required: the metric instance to record")
        if metric.kind == "UNSPECIFIED":
            report.error(f"{metric_path}.kind", "required: COUNTER, GAUGE or DISTRIBUTION")
        elif metric.kind == "DISTRIBUTION":
            _check_buckets(report, f"{metric_path}.buckets", metric.buckets)
        labels: set[str] = set()
        for number, label in enumerate(metric.label_names or ()):
            label_path = f"{metric_path}.labelNames[{number}]"
            if not _LABEL_NAME.match(label) or label.startswith("__"):
                report.error(label_path, f"{label!r} is not a Prometheus label name")
            elif label in labels:
                report.error(label_path, f"duplicate label {label!r}")
            labels.add(label)
    policy = params.metrics_expiration_policy
    if policy is not None:
        expiry_path = f"{path}.metricsExpirationPolicy"
        if policy.metrics_expiry_duration is None:
            report.error(f"{expiry_path}.metricsExpiryDuration", "required in an expiration policy")
        _check_duration(
            report, f"{expiry_path}.metricsExpiryDuration", policy.metrics_expiry_duration
        )
        interval = policy.expiry_check_interval_duration
        _check_duration(report, f"{expiry_path}.expiryCheckIntervalDuration", interval)


def _check_buckets(report: Report, path: str, buckets: BucketsDefinition | None) -> None:
    kinds = [] if buckets is None else [name for name, value in buckets if value is not None]
    if buckets is None or len(kinds) != 1:
        report.error(
            path, "a DISTRIBUTION needs exactly one of linear, exponential or explicit buckets"
        )
        return
    if buckets.linear_buckets is not None:
        linear = buckets.linear_buckets
        _check_amount(report, f"{path}.linearBuckets.numFiniteBuckets", linear.num_finite_buckets)
        if linear.width <= 0:
            report.error(f"{path}.linearBuckets.width", "must be positive")
    if buckets.exponential_buckets is not None:
        exponential = buckets.exponential_buckets
        count_path = f"{path}.exponentialBuckets.numFiniteBuckets"
        _check_amount(report, count_path, exponential.num_finite_buckets)
        if exponential.growth_factor <= 1:
            report.error(f"{path}.exponentialBuckets.growthFactor", "must be greater than 1")
        if exponential.scale <= 0:
            report.error(f"{path}.exponentialBuckets.scale", "must be positive")
    if buckets.explicit_buckets is not None:
        bounds = buckets.explicit_buckets.bounds or ()
        if not bounds or any(low >= high for low, high in itertools.pairwise(bounds)):
            report.error(f"{path}.explicitBuckets.bounds", "must be a non-empty increasing list")


def _check_stdio(report: Report, path: str, params: StdioParams) -> None:
    if params.log_stream in ("FILE", "ROTATED_FILE") and not params.output_path:
        report.error(f"{path}.outputPath", f"required when logStream is {params.log_stream}")
    for field, value in (
        ("maxMegabytesBeforeRotation", params.max_megabytes_before_rotation),
        ("maxDaysBeforeRotation", params.max_days_before_rotation),
        ("maxRotatedFiles", params.max_rotated_files),
    ):
        _check_count(report, f"{path}.{field}", value)


def _check_address(report: Report, path: str, address: str) -> None:
    if address:
        check_host_port(report, path, address)
    else:
        report.error(path, "required: host:port")


def _check_amount(report: Report, path: str, amount: int) -> None:
    if amount <= 0:
        report.error(path, f"{amount} must be greater than 0")


def _check_count(report: Report, path: str, count: int | None) -> None:
    if count is not None and count < 0:
        report.error(path, f"{count} must not be negative")


def _check_duration(
    report: Report, path: str, value: timedelta | None, *, allow_zero: bool = False
) -> None:
    """An optional duration: positive when set (or at least zero with ``allow_zero``)."""
    if value is None:
        return
    if allow_zero and value == _ZERO:
        return
    check_positive_duration(report, path, value)
