"""The ADS server's instruments (OpenTelemetry meter ``splitmesh.pilot``).

- ``pilot.xds.pushes`` (by ``type`` cds/eds/lds/rds and ``protocol`` sotw/delta): responses sent
- ``pilot.xds.nacks`` (by ``type``): responses Envoy rejected
- ``pilot.xds.stale_nonces`` (by ``type``): requests ignored for a superseded or unknown nonce
- ``pilot.xds.connected_proxies``: open ADS streams
- ``pilot.xds.convergence``: seconds from a push starting (the debounced change being
  released to the connection) until the proxy ACKed or NACKed everything that push sent
- ``pilot.xds.generations`` (by ``result`` miss/hit/error): config lookups in the cache
- ``pilot.xds.generation_time``: seconds to generate and pack one proxy's config

Instruments are no-ops until an SDK meter provider is installed (``shared.telemetry``).
"""

from __future__ import annotations

from opentelemetry import metrics

from services.pilot.core.model import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SHORT = {CLUSTER_TYPE: "cds", ENDPOINT_TYPE: "eds", LISTENER_TYPE: "lds", ROUTE_TYPE: "rds"}


def short_type(type_url: str) -> str:
    """``cds``, ``eds``, ``lds`` or ``rds`` for a served type URL (else the URL itself)."""
    return _SHORT.get(type_url, type_url)


class AdsMetrics:
    """The instruments of one ADS server (see the module docstring)."""

    def __init__(self, meter: metrics.Meter | None = None) -> None:
        meter = meter or metrics.get_meter("splitmesh.pilot")
        self.pushes = meter.create_counter(
            "pilot.xds.pushes", unit="{response}", description="xDS responses sent, by type"
        )
        self.nacks = meter.create_counter(
            "pilot.xds.nacks", unit="{nack}", description="xDS responses rejected by Envoy"
        )
        self.stale_nonces = meter.create_counter(
            "pilot.xds.stale_nonces",
            unit="{request}",
            description="Requests ignored because their nonce was superseded or unknown",
        )
        self.connected = meter.create_up_down_counter(
            "pilot.xds.connected_proxies", unit="{stream}", description="Open ADS streams"
        )
        self.convergence = meter.create_histogram(
            "pilot.xds.convergence",
            unit="s",
            description="Time from a push starting until the proxy answered all of it",
            explicit_bucket_boundaries_advisory=_BUCKETS,
        )
        self.generations = meter.create_counter(
            "pilot.xds.generations",
            unit="{lookup}",
            description="Proxy config lookups, by result (miss, hit, error)",
        )
        self.generation_time = meter.create_histogram(
            "pilot.xds.generation_time",
            unit="s",
            description="Time to generate and pack one proxy's config",
            explicit_bucket_boundaries_advisory=_BUCKETS,
        )
