"""Structured logging, idempotent telemetry setup and header injection."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY, generate_latest

from shared.telemetry import configure_logging, configure_telemetry, inject_headers


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def local_tracer() -> trace.Tracer:
    """A recording tracer that leaves the process's global provider alone."""
    return TracerProvider().get_tracer("tests")


@pytest.mark.usefixtures("restore_root_logger")
def test_json_lines_carry_fields_trace_ids_and_extras(
    capsys: pytest.CaptureFixture[str], local_tracer: trace.Tracer
) -> None:
    configure_logging("info", json=True)
    log = logging.getLogger("splitmesh.test")
    log.debug("hidden below the level")
    with local_tracer.start_as_current_span("push") as span:
        log.info("pushed %d clusters", 3, extra={"node": "sidecar~10.0.0.1", "version": 7})
    log.warning("outside any span")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    inside, outside = (json.loads(line) for line in lines)
    context = span.get_span_context()
    assert inside["message"] == "pushed 3 clusters"
    assert inside["level"] == "INFO"
    assert inside["logger"] == "splitmesh.test"
    assert inside["time"].endswith("+00:00")
    assert inside["trace_id"] == f"{context.trace_id:032x}"
    assert inside["span_id"] == f"{context.span_id:016x}"
    assert inside["node"] == "sidecar~10.0.0.1"
    assert inside["version"] == 7
    assert outside["level"] == "WARNING"
    assert "trace_id" not in outside


@pytest.mark.usefixtures("restore_root_logger")
def test_json_lines_include_the_exception(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("ERROR", json=True)
    try:
        raise KeyError("cluster")
    except KeyError:
        logging.getLogger("splitmesh.test").exception("push failed")
    entry = json.loads(capsys.readouterr().err)
    assert entry["message"] == "push failed"
    assert "KeyError: 'cluster'" in entry["exc"]


@pytest.mark.usefixtures("restore_root_logger")
def test_text_lines_append_the_trace_id_and_reconfiguring_replaces_the_handler(
    capsys: pytest.CaptureFixture[str], local_tracer: trace.Tracer
) -> None:
    configure_logging("info", json=True)
    configure_logging("info", json=False)
    with local_tracer.start_as_current_span("push") as span:
        logging.getLogger("splitmesh.test").info("hello")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1  # the JSON handler is gone, not doubled
    assert " INFO splitmesh.test: hello trace_id=" in lines[0]
    assert lines[0].endswith(f"{span.get_span_context().trace_id:032x}")


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        configure_logging("loud", json=True)


def test_inject_headers_adds_traceparent_only_inside_a_span(local_tracer: trace.Tracer) -> None:
    assert inject_headers({"accept": "application/json"}) == {"accept": "application/json"}
    with local_tracer.start_as_current_span("call") as span:
        headers = inject_headers({})
    context = span.get_span_context()
    version, trace_id, span_id, flags = headers["traceparent"].split("-")
    assert (version, trace_id, span_id) == (
        "00",
        f"{context.trace_id:032x}",
        f"{context.span_id:016x}",
    )
    assert int(flags, 16) & 0x01  # sampled


def test_configuring_twice_keeps_one_provider_and_one_collector(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        configure_telemetry("unit-a", otlp_endpoint=None)
        provider = trace.get_tracer_provider()
        configure_telemetry("unit-b", otlp_endpoint="http://127.0.0.1:1")
    assert trace.get_tracer_provider() is provider
    assert isinstance(provider, TracerProvider)
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry")]
    metrics.get_meter("tests").create_counter("splitmesh_unit_configured").add(2)
    exposition = generate_latest(REGISTRY).decode()
    assert exposition.count("# TYPE splitmesh_unit_configured_total counter") == 1
    series = [
        line for line in exposition.splitlines() if line.startswith("splitmesh_unit_configured")
    ]
    assert len(series) == 1
    assert series[0].endswith(" 2.0")
