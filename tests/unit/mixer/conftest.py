"""Mixer's core wired for unit tests: real adapters, a settable clock, metrics in memory.

The ``kit`` fixture is a :class:`MixerKit`: :meth:`MixerKit.load` feeds Istio YAML to a
:class:`ConfigRuntime` as MCP snapshots (every Mixer collection, empty ones included,
exactly what Galley publishes); :meth:`MixerKit.check`, :meth:`MixerKit.quota` and
:meth:`MixerKit.report` go through the real PolicyService (check cache included),
dispatcher and reporter code; :meth:`MixerKit.counter` sums a Mixer metric.
The clock starts at 1000.0 s and moves only when a test advances it.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from services.mixer.core.check_cache import CheckCache
from services.mixer.core.compiler import CompileOptions
from services.mixer.core.dispatcher import CheckDecision, Dispatcher, QuotaDecision
from services.mixer.core.handlers.base import QuotaArgs
from services.mixer.core.handlers.denier import DenierBuilder
from services.mixer.core.handlers.listchecker import ListCheckerBuilder
from services.mixer.core.handlers.prometheus import PrometheusBuilder
from services.mixer.core.handlers.quota import MemquotaBuilder
from services.mixer.core.handlers.stdio import StdioBuilder
from services.mixer.core.loadshed import LoadShedder
from services.mixer.core.memory_quota import MemoryQuotaBackend
from services.mixer.core.metric_store import MetricStore
from services.mixer.core.policy import PolicyService
from services.mixer.core.runtime import ConfigRuntime
from services.mixer.core.self_metrics import MixerMetrics
from services.mixer.core.standard_telemetry import standard_telemetry
from services.mixer.ports import MIXER_COLLECTIONS
from shared.config import parse_yaml
from shared.contracts.mcp.snapshot import CollectionSnapshot, McpResource
from shared.policy_expr import DictBag, Value


@dataclass
class Clock:
    """A settable clock (seconds)."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def yaml_snapshots(text: str, version: str) -> list[CollectionSnapshot]:
    """What Galley would publish for ``text``: one snapshot per Mixer collection."""
    result = parse_yaml(text, "test.yaml")
    assert not result.issues, result.issues
    snapshots = []
    for collection in MIXER_COLLECTIONS:
        resources = {
            r.metadata.full_name: McpResource(r.metadata.full_name, r.content_version(), r.body())
            for r in result.resources
            if r.collection == collection
        }
        snapshots.append(CollectionSnapshot(collection, version, resources))
    return snapshots


@dataclass
class MixerKit:
    """See the module docstring."""

    clock: Clock
    reader: InMemoryMetricReader
    metrics: MixerMetrics
    store: MetricStore
    stdout: io.StringIO
    runtime: ConfigRuntime
    dispatcher: Dispatcher
    policy: PolicyService
    shedder: LoadShedder
    versions: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    async def load(self, text: str) -> None:
        """Make ``text`` the whole config (a new version)."""
        version = f"v{next(self.versions)}"
        for snapshot in yaml_snapshots(text, version):
            await self.runtime.apply(snapshot)

    def check(self, attributes: Mapping[str, Value] | None = None) -> CheckDecision:
        """Check a request with these attributes."""
        return self.policy.check(DictBag(attributes))

    async def quota(
        self,
        quota: str,
        attributes: Mapping[str, Value] | None = None,
        *,
        amount: int = 1,
        dedup: str = "",
    ) -> QuotaDecision:
        """Allocate ``amount`` of ``quota`` for a request with these attributes."""
        args = QuotaArgs(amount=amount, dedup_id=dedup)
        return await self.policy.quota(DictBag(attributes), quota, args)

    async def report(self, bags: Sequence[DictBag]) -> None:
        """Dispatch the report rules for ``bags`` (one batch)."""
        await self.dispatcher.report(self.runtime.current, bags)

    def counter(self, name: str, **labels: str) -> float:
        """The sum of metric ``name``'s points whose attributes include ``labels``."""
        data = self.reader.get_metrics_data()
        total = 0.0
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != name:
                        continue
                    for point in metric.data.data_points:
                        attributes = dict(point.attributes or {})
                        if labels.items() <= attributes.items():
                            total += getattr(point, "value", 0)
        return total


def make_kit(*, fail_open: bool | None = None, standard: bool = False) -> MixerKit:
    """A kit (see the module docstring)."""
    clock = Clock()
    reader = InMemoryMetricReader()
    metrics = MixerMetrics(MeterProvider(metric_readers=[reader]).get_meter("test"))
    store = MetricStore()
    stdout = io.StringIO()
    builders = {
        "denier": DenierBuilder(),
        "listchecker": ListCheckerBuilder(),
        "memquota": MemquotaBuilder(MemoryQuotaBackend(), clock),
        "prometheus": PrometheusBuilder(store),
        "stdio": StdioBuilder(streams={"STDOUT": stdout, "STDERR": stdout}, clock=clock),
    }
    runtime = ConfigRuntime(
        builders=builders,
        options=CompileOptions(
            check_fail_open=fail_open, extra=standard_telemetry if standard else None
        ),
        metrics=metrics,
    )
    dispatcher = Dispatcher(metrics=metrics, default_ttl=60.0, default_uses=10_000)
    shedder = LoadShedder(budget=0.0)
    policy = PolicyService(
        runtime=runtime,
        dispatcher=dispatcher,
        cache=CheckCache(max_entries=1000, clock=clock),
        shedder=shedder,
        metrics=metrics,
        quota_timeout=1.0,
        quota_fail_open=True,
    )
    return MixerKit(clock, reader, metrics, store, stdout, runtime, dispatcher, policy, shedder)


@pytest.fixture
def kit() -> MixerKit:
    """A kit with the fail policy from MeshConfig (closed by default), no built-ins."""
    return make_kit()


@pytest.fixture
def kit_factory() -> Callable[..., MixerKit]:
    """``make_kit(fail_open=..., standard=...)`` for tests that need other options."""
    return make_kit
