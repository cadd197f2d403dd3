"""Fixtures for Citadel's unit tests: identities, token keys, a movable clock, metrics.

- ``token_key``: a fresh Ed25519 signing key; ``verifier``: a TokenVerifier trusting it
  for ``cluster.local`` (``max_ttl_s`` 3600, no clock leeway: tests pick exact instants).
- ``clock``: a :class:`Clock` starting at a fixed instant; tests move it.
- ``metric_reader``/``meter``: an in-memory OpenTelemetry reader and a meter feeding it;
  :func:`counter_values` sums a counter's points by one attribute.
"""

from __future__ import annotations

import datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint

from services.citadel.core.token import TokenVerifier
from shared.contracts.ca.spiffe import SpiffeId

TRUST_DOMAIN = "cluster.local"
START = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
SLEEP = SpiffeId(TRUST_DOMAIN, "default", "sleep")
HTTPBIN = SpiffeId(TRUST_DOMAIN, "default", "httpbin")


class Clock:
    """Seconds since the epoch that tests move by hand."""

    def __init__(self, start: datetime.datetime = START) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    @property
    def datetime(self) -> datetime.datetime:
        """The current instant as an aware datetime."""
        return datetime.datetime.fromtimestamp(self.now, datetime.UTC)

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def token_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def verifier(token_key: Ed25519PrivateKey) -> TokenVerifier:
    return TokenVerifier(
        public_key=token_key.public_key(), trust_domain=TRUST_DOMAIN, max_ttl_s=3600, leeway_s=0
    )


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def meter(metric_reader: InMemoryMetricReader) -> metrics.Meter:
    return MeterProvider(metric_readers=[metric_reader]).get_meter("test")


def counter_values(reader: InMemoryMetricReader, name: str, attribute: str) -> dict[str, int]:
    """``{attribute value: count}`` of the counter ``name`` read now."""
    data = reader.get_metrics_data()
    values: dict[str, int] = {}
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        assert isinstance(point, NumberDataPoint)
                        key = str((point.attributes or {}).get(attribute))
                        values[key] = values.get(key, 0) + int(point.value)
    return values
