"""Mixer: policy checks, quotas and telemetry reports.

Not built yet (issue 5)."""
