"""VirtualService (networking.istio.io/v1alpha3): how requests to a host are routed.

Field names and meanings follow Istio's API reference; deprecated fields that Istio 1.4
still read (``allowOrigin``, ``mirrorPercent``, ``percent``) are kept so existing files
load. Models are immutable values (safe to share between tasks); they check types only,
Galley's validation checks Istio's rules (weights, one of route/redirect, ranges).
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from shared.config.base import Duration, SpecModel
from shared.config.networking_types import Destination, Percent, StringMatch


class HeaderOperations(SpecModel):
    """Headers to overwrite (``set``), append (``add``) or delete (``remove``)."""

    set: Mapping[str, str] = Field(default_factory=dict)
    add: Mapping[str, str] = Field(default_factory=dict)
    remove: tuple[str, ...] = ()


class Headers(SpecModel):
    """Header manipulation for the request to the destination and the response from it."""

    request: HeaderOperations | None = None
    response: HeaderOperations | None = None


class HTTPMatchRequest(SpecModel):
    """Conditions (ANDed) a request must meet for the route to apply."""

    name: str | None = None
    uri: StringMatch | None = None
    scheme: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    headers: Mapping[str, StringMatch] = Field(default_factory=dict)
    port: int | None = None
    source_labels: Mapping[str, str] = Field(default_factory=dict)
    gateways: tuple[str, ...] = ()
    query_params: Mapping[str, StringMatch] = Field(default_factory=dict)
    ignore_uri_case: bool = False
    without_headers: Mapping[str, StringMatch] = Field(default_factory=dict)
    source_namespace: str | None = None


class HTTPRouteDestination(SpecModel):
    """One weighted destination of an HTTP route, with its own header manipulation."""

    destination: Destination
    weight: int | None = None
    headers: Headers | None = None


class RouteDestination(SpecModel):
    """One weighted destination of a TCP or TLS route."""

    destination: Destination
    weight: int | None = None


class HTTPRedirect(SpecModel):
    """Answer with a redirect instead of forwarding."""

    uri: str | None = None
    authority: str | None = None
    redirect_code: int | None = None


class HTTPRewrite(SpecModel):
    """Rewrite the path (prefix) and/or authority before forwarding."""

    uri: str | None = None
    authority: str | None = None


class HTTPRetry(SpecModel):
    """How often, on which failures and with which per-try timeout to retry."""

    attempts: int = 0
    per_try_timeout: Duration | None = None
    retry_on: str | None = None


class FaultDelay(SpecModel):
    """Delay a percentage of requests by a fixed time."""

    fixed_delay: Duration | None = None
    percentage: Percent | None = None
    percent: int | None = None


class FaultAbort(SpecModel):
    """Fail a percentage of requests with an HTTP status."""

    http_status: int | None = None
    percentage: Percent | None = None
    percent: int | None = None


class HTTPFaultInjection(SpecModel):
    """Client-side fault injection: a delay, an abort, or both."""

    delay: FaultDelay | None = None
    abort: FaultAbort | None = None


class CorsPolicy(SpecModel):
    """Cross-origin resource sharing answers for this route."""

    allow_origin: tuple[str, ...] = ()
    allow_origins: tuple[StringMatch, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: Duration | None = None
    allow_credentials: bool | None = None


class HTTPRoute(SpecModel):
    """Match conditions and actions for HTTP/1.1, HTTP/2 and gRPC traffic."""

    name: str | None = None
    match: tuple[HTTPMatchRequest, ...] = ()
    route: tuple[HTTPRouteDestination, ...] = ()
    redirect: HTTPRedirect | None = None
    rewrite: HTTPRewrite | None = None
    timeout: Duration | None = None
    retries: HTTPRetry | None = None
    fault: HTTPFaultInjection | None = None
    mirror: Destination | None = None
    mirror_percent: int | None = None
    mirror_percentage: Percent | None = None
    cors_policy: CorsPolicy | None = None
    headers: Headers | None = None


class L4MatchAttributes(SpecModel):
    """Conditions for a TCP route (connection attributes only)."""

    destination_subnets: tuple[str, ...] = ()
    port: int | None = None
    source_subnet: str | None = None
    source_labels: Mapping[str, str] = Field(default_factory=dict)
    gateways: tuple[str, ...] = ()
    source_namespace: str | None = None


class TLSMatchAttributes(SpecModel):
    """Conditions for a TLS route: SNI names plus connection attributes."""

    sni_hosts: tuple[str, ...] = ()
    destination_subnets: tuple[str, ...] = ()
    port: int | None = None
    source_labels: Mapping[str, str] = Field(default_factory=dict)
    gateways: tuple[str, ...] = ()
    source_namespace: str | None = None


class TCPRoute(SpecModel):
    """Route for opaque TCP traffic."""

    match: tuple[L4MatchAttributes, ...] = ()
    route: tuple[RouteDestination, ...] = ()


class TLSRoute(SpecModel):
    """Route for TLS traffic that is passed through, chosen by SNI."""

    match: tuple[TLSMatchAttributes, ...] = ()
    route: tuple[RouteDestination, ...] = ()


class VirtualServiceSpec(SpecModel):
    """The routing rules for a set of hosts, bound to sidecars (``mesh``) and/or gateways."""

    hosts: tuple[str, ...] = ()
    gateways: tuple[str, ...] = ()
    http: tuple[HTTPRoute, ...] = ()
    tls: tuple[TLSRoute, ...] = ()
    tcp: tuple[TCPRoute, ...] = ()
    export_to: tuple[str, ...] = ()
