"""``prometheus``: ``metric`` instances recorded as Prometheus series on Mixer's /metrics.

Each configured metric is fed by the instance named in ``instanceName`` (resolved in
the handler's namespace). Its exported name is ``<namespace>_<name>`` with Istio's
default namespace ``istio`` (``requests_total`` → ``istio_requests_total``). Labels are
the instance's ``dimensions`` named by ``labelNames`` (a missing one is ``unknown``).
Values: numbers as they are, booleans as 0/1, durations in the unit the metric name
ends with (``_milliseconds``, else seconds, Istio's convention). Distributions use the
configured buckets (Prometheus' defaults when none). Series live in a shared
:class:`~services.mixer.core.metric_store.MetricStore`, so they survive config
versions while their definition is unchanged.

Task safety: event loop only. A value that is not a number is skipped and counted by
the caller as a report error (:class:`~services.mixer.core.errors.HandlerError`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from services.mixer.core.errors import ConfigError, HandlerError
from services.mixer.core.handlers.base import Instance, StatelessHandler
from services.mixer.core.metric_store import MetricDefinition, MetricFamily, MetricStore
from services.mixer.core.names import candidates
from shared.config.policy_adapters import BucketsDefinition, PrometheusMetric, PrometheusParams

_DEFAULT_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_DEFAULT_NAMESPACE = "istio"


class _Feed:
    __slots__ = ("family", "labels", "milliseconds")

    def __init__(self, family: MetricFamily) -> None:
        self.family = family
        self.labels = family.definition.label_names
        self.milliseconds = family.definition.name.endswith("_milliseconds")


class PrometheusHandler(StatelessHandler):
    """A configured prometheus handler."""

    def __init__(self, name: str, params: PrometheusParams, store: MetricStore) -> None:
        namespace = name.rsplit(".", 1)[-1]
        self._feeds: dict[str, list[_Feed]] = {}
        for metric in params.metrics or ():
            feed = _Feed(store.family(_definition(name, metric)))
            for instance in candidates(metric.instance_name, "instance", namespace):
                self._feeds.setdefault(instance, []).append(feed)

    async def handle_report(self, instances: Sequence[Instance]) -> None:
        """Record every instance a configured metric is fed by."""
        bad: list[str] = []
        # Instances of one request share their dimensions mapping: label it once.
        labelled: dict[tuple[int, tuple[str, ...]], tuple[str, ...]] = {}
        for instance in instances:
            feeds = self._feeds.get(instance.name)
            if not feeds:
                continue
            dimensions = instance.fields.get("dimensions") or {}
            raw = instance.fields.get("value")
            for feed in feeds:
                value = _number(raw, milliseconds=feed.milliseconds)
                if value is None:
                    bad.append(f"{instance.name}: value {raw!r} is not a number")
                    continue
                key = (id(dimensions), feed.labels)
                labels = labelled.get(key)
                if labels is None:
                    labels = tuple([_label(dimensions.get(label)) for label in feed.labels])
                    labelled[key] = labels
                feed.family.record(labels, value)
        if bad:
            raise HandlerError("; ".join(bad))


def _definition(handler: str, metric: PrometheusMetric) -> MetricDefinition:
    if not metric.name:
        raise ConfigError(handler, "a metric needs a name")
    kind = metric.kind
    if kind == "UNSPECIFIED":
        raise ConfigError(handler, f"metric {metric.name}: kind is required")
    namespace = metric.namespace or _DEFAULT_NAMESPACE
    return MetricDefinition(
        name=f"{namespace}_{metric.name}",
        kind=kind,
        description=metric.description or metric.name,
        label_names=tuple(metric.label_names or ()),
        bounds=_bounds(metric.buckets) if kind == "DISTRIBUTION" else (),
    )


def _bounds(buckets: BucketsDefinition | None) -> tuple[float, ...]:
    if buckets is None:
        return _DEFAULT_BOUNDS
    if buckets.explicit_buckets is not None:
        return tuple(sorted(buckets.explicit_buckets.bounds or ()))
    if buckets.linear_buckets is not None:
        linear = buckets.linear_buckets
        return tuple(linear.offset + linear.width * i for i in range(linear.num_finite_buckets + 1))
    if buckets.exponential_buckets is not None:
        exp = buckets.exponential_buckets
        return tuple(exp.scale * exp.growth_factor**i for i in range(exp.num_finite_buckets + 1))
    return _DEFAULT_BOUNDS


def _number(value: Any, *, milliseconds: bool) -> float | None:
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
        return seconds * 1000.0 if milliseconds else seconds
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


def _label(value: Any) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class PrometheusBuilder:
    """Builds prometheus handlers recording into one shared store."""

    templates = frozenset({"metric"})

    def __init__(self, store: MetricStore) -> None:
        self._store = store

    def build(self, name: str, params: Any) -> PrometheusHandler:
        """A prometheus handler from :class:`PrometheusParams`."""
        return PrometheusHandler(name, params, self._store)
