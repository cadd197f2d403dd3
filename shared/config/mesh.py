"""Typed spec of the mesh-wide settings: kind ``mesh.istio.io/v1alpha1 MeshConfig``.

The spec holds a subset of Istio's MeshConfig fields under their Istio names. Every
field defaults to what a default Istio 1.4 install runs with (``DefaultMeshConfig`` in
``pkg/config/mesh`` overlaid with the Helm chart's values), so ``MeshConfigSpec()`` is
the mesh without a MeshConfig object, and a partial object changes only its fields.
Durations are :class:`datetime.timedelta`. Value rules (positive durations, ``host:port``
addresses) are Galley's. Instances are immutable and safe to share between tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Literal

from pydantic import Field

from shared.config.base import Duration, SpecModel

DEFAULT_ROOT_NAMESPACE = "istio-system"
"""Istio's default ``rootNamespace``: config here applies mesh-wide."""


class ProxyConfig(SpecModel):
    """The sidecar defaults (``defaultConfig``): where to find Pilot, how to drain."""

    config_path: str = "/etc/istio/proxy"
    binary_path: str = "/usr/local/bin/envoy"
    service_cluster: str = "istio-proxy"
    discovery_address: str = "istio-pilot:15010"
    drain_duration: Duration = timedelta(seconds=45)
    parent_shutdown_duration: Duration = timedelta(seconds=60)
    proxy_admin_port: int = 15000
    status_port: int = 15020
    concurrency: int = 2
    control_plane_auth_policy: Literal["NONE", "MUTUAL_TLS"] = "NONE"
    proxy_metadata: Mapping[str, str] = Field(default_factory=dict)


class OutboundTrafficPolicy(SpecModel):
    """Whether sidecars pass traffic to hosts outside the service registry."""

    mode: Literal["REGISTRY_ONLY", "ALLOW_ANY"] = "ALLOW_ANY"


class MeshConfigSpec(SpecModel):
    """Mesh-wide settings for Pilot, Mixer, Citadel and every sidecar."""

    mixer_check_server: str = ""
    mixer_report_server: str = ""
    disable_policy_checks: bool = True
    policy_check_fail_open: bool = False
    disable_mixer_http_reports: bool = False
    report_batch_max_entries: int = 100
    report_batch_max_time: Duration = timedelta(seconds=1)
    enable_tracing: bool = True
    access_log_file: str = "/dev/stdout"
    access_log_format: str = ""
    access_log_encoding: Literal["TEXT", "JSON"] = "TEXT"
    enable_envoy_access_log_service: bool = False
    connect_timeout: Duration = timedelta(seconds=10)
    protocol_detection_timeout: Duration = timedelta(milliseconds=100)
    dns_refresh_rate: Duration = timedelta(seconds=5)
    ingress_service: str = "istio-ingressgateway"
    ingress_class: str = "istio"
    ingress_controller_mode: Literal["UNSPECIFIED", "OFF", "DEFAULT", "STRICT"] = "STRICT"
    trust_domain: str = "cluster.local"
    trust_domain_aliases: tuple[str, ...] = ()
    enable_auto_mtls: bool = False
    root_namespace: str = DEFAULT_ROOT_NAMESPACE
    outbound_traffic_policy: OutboundTrafficPolicy = Field(default_factory=OutboundTrafficPolicy)
    default_config: ProxyConfig = Field(default_factory=ProxyConfig)
    default_service_export_to: tuple[str, ...] = ("*",)
    default_virtual_service_export_to: tuple[str, ...] = ("*",)
    default_destination_rule_export_to: tuple[str, ...] = ("*",)
