"""Fixtures for the shared server tests: the process's telemetry, with spans kept in memory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.telemetry import configure_telemetry


@pytest.fixture(scope="session")
def _session_spans() -> InMemorySpanExporter:
    configure_telemetry("splitmesh-tests", otlp_endpoint=None)
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def spans(_session_spans: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    """The spans finished during this test (configures the process's telemetry)."""
    _session_spans.clear()
    yield _session_spans
    _session_spans.clear()
