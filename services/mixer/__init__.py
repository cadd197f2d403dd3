"""Mixer: policy checks, quotas and telemetry reports (Istio 1.4), behind Envoy's own APIs."""
