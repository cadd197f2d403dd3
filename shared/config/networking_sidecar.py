"""Sidecar (networking.istio.io/v1alpha3): narrows what a workload's proxy listens to.

Inbound listeners (``ingress``), the hosts each outbound listener can reach (``egress``,
in ``namespace/host`` form) and the policy for unknown destinations. Field names follow
Istio's API reference. Immutable values, safe to share between tasks; Galley's
validation checks the listener and host rules.
"""

from __future__ import annotations

from typing import Literal

from shared.config.base import SpecModel
from shared.config.networking_types import Port, WorkloadSelector

CaptureMode = Literal["DEFAULT", "IPTABLES", "NONE"]


class IstioIngressListener(SpecModel):
    """An inbound listener: a port, and the application endpoint it forwards to."""

    port: Port | None = None
    bind: str | None = None
    capture_mode: CaptureMode | None = None
    default_endpoint: str | None = None


class IstioEgressListener(SpecModel):
    """An outbound listener (all ports when ``port`` is unset) and the hosts it sees."""

    port: Port | None = None
    bind: str | None = None
    capture_mode: CaptureMode | None = None
    hosts: tuple[str, ...] = ()


class OutboundTrafficPolicy(SpecModel):
    """Whether traffic to hosts outside the registry is allowed or blocked."""

    mode: Literal["REGISTRY_ONLY", "ALLOW_ANY"] = "REGISTRY_ONLY"


class SidecarSpec(SpecModel):
    """The proxy configuration of the workloads matched by ``workloadSelector``."""

    workload_selector: WorkloadSelector | None = None
    ingress: tuple[IstioIngressListener, ...] = ()
    egress: tuple[IstioEgressListener, ...] = ()
    outbound_traffic_policy: OutboundTrafficPolicy | None = None
