"""Serves the ``prometheus`` adapter's series on Mixer's ``/metrics``.

:class:`MetricStoreCollector` is a ``prometheus_client`` collector over the core's
:class:`~services.mixer.core.metric_store.MetricStore`: each scrape turns every family
into a counter, gauge or histogram family (buckets cumulative, ``+Inf`` last). It is a
Component: ``start`` registers it with a registry (the process's default one, which
``/metrics`` serves), ``stop`` unregisters it. Scrapes run on the event loop thread
(the admin app's handler), the thread that records.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import accumulate

from prometheus_client.core import (
    REGISTRY,
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from services.mixer.core.metric_store import MetricFamily, MetricStore


class MetricStoreCollector:
    """See the module docstring."""

    name = "mixer-prometheus-collector"

    def __init__(self, store: MetricStore, registry: CollectorRegistry = REGISTRY) -> None:
        self._store = store
        self._registry = registry
        self._registered = False

    def collect(self) -> Iterator[Metric]:
        """One metric family per store family."""
        for family in self._store.families():
            yield _convert(family)

    def describe(self) -> list[Metric]:
        """Nothing up front: the families change with the config."""
        return []

    async def start(self) -> None:
        """Register with the registry."""
        if not self._registered:
            self._registry.register(self)
            self._registered = True

    async def stop(self) -> None:
        """Unregister. Idempotent."""
        if self._registered:
            self._registry.unregister(self)
            self._registered = False


def _convert(family: MetricFamily) -> Metric:
    definition = family.definition
    labels = list(definition.label_names)
    if definition.kind == "DISTRIBUTION":
        histogram = HistogramMetricFamily(definition.name, definition.description, labels=labels)
        bounds = [*(f"{bound:g}" for bound in definition.bounds), "+Inf"]
        for values, series in family.distributions.items():
            cumulative = list(accumulate(series.counts))
            histogram.add_metric(
                list(values),
                list(zip(bounds, (float(c) for c in cumulative), strict=True)),
                series.total,
            )
        return histogram
    metric: CounterMetricFamily | GaugeMetricFamily
    if definition.kind == "COUNTER":
        metric = CounterMetricFamily(definition.name, definition.description, labels=labels)
    else:
        metric = GaugeMetricFamily(definition.name, definition.description, labels=labels)
    for values, value in family.values.items():
        metric.add_metric(list(values), value)
    return metric
