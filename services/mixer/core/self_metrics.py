"""Mixer's own metrics (OpenTelemetry instruments, scraped from Mixer's /metrics).

One :class:`MixerMetrics` per process, made from a meter (``splitmesh.mixer`` by
default). Names end in ``_total`` for counters, as Galley's do. Instruments are
thread-safe; recording never raises.
"""

from __future__ import annotations

from opentelemetry import metrics


class MixerMetrics:
    """The instruments the core and the servicers record into."""

    def __init__(self, meter: metrics.Meter | None = None) -> None:
        meter = meter if meter is not None else metrics.get_meter("splitmesh.mixer")
        self.checks = meter.create_counter(
            "mixer_checks_total", unit="{check}", description="Checks answered, by status code"
        )
        self.check_cache = meter.create_counter(
            "mixer_check_cache_total",
            unit="{lookup}",
            description="Check cache lookups, by result (hit or miss)",
        )
        self.quotas = meter.create_counter(
            "mixer_quota_total",
            unit="{allocation}",
            description="Quota allocations, by result (granted, exhausted, error)",
        )
        self.rule_errors = meter.create_counter(
            "mixer_rule_errors_total",
            unit="{error}",
            description="Rules or instances a request could not evaluate, by rule and variety",
        )
        self.handler_errors = meter.create_counter(
            "mixer_handler_errors_total",
            unit="{error}",
            description="Adapter failures, by handler",
        )
        self.reports = meter.create_counter(
            "mixer_report_entries_total",
            unit="{entry}",
            description="Access-log entries dispatched to report rules",
        )
        self.shed = meter.create_counter(
            "mixer_load_shed_total",
            unit="{call}",
            description="Calls refused with UNAVAILABLE over the latency budget, by API",
        )
        self.streams_rejected = meter.create_counter(
            "mixer_access_log_streams_rejected_total",
            unit="{stream}",
            description="Access-log streams closed for malformed input",
        )
        self.config_versions = meter.create_counter(
            "mixer_config_versions_total",
            unit="{version}",
            description="Config versions compiled",
        )
        self.config_issues = meter.create_gauge(
            "mixer_config_issues",
            unit="{issue}",
            description="Problems found compiling the current config version",
        )
