"""Names of the Envoy resources Pilot generates (Istio's forms, see notes/pilot.md).

Clusters ``outbound|<port>|<subset>|<host>`` and ``inbound|<port>||<host>``; listeners
``outbound_http``, ``inbound|<port>`` and ``gateway_<port>``; route configurations
``outbound_http``, ``inbound|<port>`` and ``http.<port>``; the HTTP filter names of
every connection manager; and the Mixer clusters. Pure functions and constants.
"""

from __future__ import annotations

OUTBOUND_HTTP = "outbound_http"
"""The name of the outbound HTTP listener and of its route configuration."""
PASSTHROUGH_CLUSTER = "PassthroughCluster"

HCM_FILTER = "envoy.filters.network.http_connection_manager"
TCP_PROXY_FILTER = "envoy.filters.network.tcp_proxy"
FAULT_FILTER = "envoy.filters.http.fault"
CORS_FILTER = "envoy.filters.http.cors"
ROUTER_FILTER = "envoy.filters.http.router"
EXT_AUTHZ_FILTER = "envoy.filters.http.ext_authz"
RATE_LIMIT_FILTER = "envoy.filters.http.ratelimit"
GRPC_ACCESS_LOG = "envoy.access_loggers.http_grpc"
MIXER_POLICY_CLUSTER = "mixer-policy"
"""Mixer's Check and quota (ext_authz, RLS) server, from MeshConfig ``mixerCheckServer``."""
MIXER_TELEMETRY_CLUSTER = "mixer-telemetry"
"""Mixer's Report (ALS) server, from MeshConfig ``mixerReportServer``."""
PREVIOUS_HOSTS_PREDICATE = "envoy.retry_host_predicates.previous_hosts"


def outbound_cluster(port: int, host: str, subset: str = "") -> str:
    """``outbound|8080|v1|catalog.shop.svc.cluster.local`` (no subset: ``outbound|8080||…``)."""
    return f"outbound|{port}|{subset}|{host}"


def inbound_cluster(port: int, host: str) -> str:
    """``inbound|18081||catalog.shop.svc.cluster.local``: the proxy's own app behind a port."""
    return f"inbound|{port}||{host}"


def inbound_listener(port: int) -> str:
    """``inbound|18081``: the listener bound on a workload's endpoint port."""
    return f"inbound|{port}"


def inbound_route(port: int) -> str:
    """``inbound|18081``: the route configuration of that inbound listener."""
    return f"inbound|{port}"


def gateway_listener(port: int) -> str:
    """``gateway_8080``: a gateway server port's listener."""
    return f"gateway_{port}"


def gateway_route(port: int) -> str:
    """``http.8080``: the route configuration of a gateway server port."""
    return f"http.{port}"
