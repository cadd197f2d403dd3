"""Per-route policies of a VirtualService rule: retries, fault, CORS and hash keys.

:func:`retry_policy` is Istio 1.4's ``retry.ConvertPolicy``: no ``retries`` means Istio's
default (2 attempts on connect-failure, refused-stream, unavailable, cancelled,
resource-exhausted and 503, avoiding previously tried hosts); ``attempts: 0`` means no
retries; numeric ``retryOn`` entries become retriable status codes. :func:`fault_filter`
and :func:`cors_policy` build the per-route configs of the fault and CORS filters (a
fault percentage left unspecified applies to all requests, as Istio documents it).
:func:`hash_policy` is the route half of a consistent-hash load balancer. Pure functions.
"""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.type.matcher.v3 import string_pb2

from services.pilot.core.xds import naming, protos
from services.pilot.core.xds.plan import EffectivePolicy
from shared.config.networking_types import Percent
from shared.config.networking_virtualservice import CorsPolicy, HTTPFaultInjection, HTTPRetry

DEFAULT_RETRY_ON = (
    "connect-failure,refused-stream,unavailable,cancelled,resource-exhausted,retriable-status-codes"
)
_DEFAULT_ATTEMPTS = 2
_DEFAULT_STATUS_CODES = (503,)
_HOST_SELECTION_ATTEMPTS = 5


def retry_policy(retries: HTTPRetry | None) -> rc.RetryPolicy | None:
    """The Envoy retry policy for a rule's ``retries`` (None: do not retry)."""
    if retries is not None and retries.attempts <= 0:
        return None
    policy = rc.RetryPolicy(
        retry_on=DEFAULT_RETRY_ON,
        retriable_status_codes=_DEFAULT_STATUS_CODES,
        host_selection_retry_max_attempts=_HOST_SELECTION_ATTEMPTS,
    )
    policy.num_retries.value = _DEFAULT_ATTEMPTS
    policy.retry_host_predicate.add(
        name=naming.PREVIOUS_HOSTS_PREDICATE,
        typed_config=protos.pack(previous_hosts_pb2.PreviousHostsPredicate()),
    )
    if retries is None:
        return policy
    policy.num_retries.value = retries.attempts
    if retries.retry_on:
        entries = [entry.strip() for entry in retries.retry_on.split(",") if entry.strip()]
        codes = [int(entry) for entry in entries if entry.isdigit()]
        names = [entry for entry in entries if not entry.isdigit()]
        if codes and "retriable-status-codes" not in names:
            names.append("retriable-status-codes")
        policy.retry_on = ",".join(names)
        policy.ClearField("retriable_status_codes")
        policy.retriable_status_codes.extend(codes)
    if retries.per_try_timeout:
        policy.per_try_timeout.CopyFrom(protos.duration(retries.per_try_timeout))
    return policy


def fault_filter(fault: HTTPFaultInjection) -> fault_pb2.HTTPFault:
    """The per-route config of envoy.filters.http.fault."""
    out = fault_pb2.HTTPFault()
    delay, abort = fault.delay, fault.abort
    if delay is not None and delay.fixed_delay is not None:
        out.delay.fixed_delay.CopyFrom(protos.duration(delay.fixed_delay))
        out.delay.percentage.CopyFrom(protos.fraction(_percent(delay.percentage, delay.percent)))
    if abort is not None and abort.http_status is not None:
        out.abort.http_status = abort.http_status
        out.abort.percentage.CopyFrom(protos.fraction(_percent(abort.percentage, abort.percent)))
    return out


def cors_policy(cors: CorsPolicy) -> cors_pb2.CorsPolicy:
    """The per-route config of envoy.filters.http.cors."""
    out = cors_pb2.CorsPolicy(
        allow_methods=",".join(cors.allow_methods),
        allow_headers=",".join(cors.allow_headers),
        expose_headers=",".join(cors.expose_headers),
    )
    for origin in cors.allow_origin:  # deprecated exact origins; "*" allows any
        if origin == "*":
            out.allow_origin_string_match.add(safe_regex=protos.regex_matcher(".*"))
        else:
            out.allow_origin_string_match.append(string_pb2.StringMatcher(exact=origin))
    for match in cors.allow_origins:
        out.allow_origin_string_match.append(protos.string_matcher(match))
    if cors.max_age is not None:
        out.max_age = str(int(cors.max_age.total_seconds()))
    if cors.allow_credentials is not None:
        out.allow_credentials.value = cors.allow_credentials
    return out


def hash_policy(policy: EffectivePolicy | None) -> rc.RouteAction.HashPolicy | None:
    """The hash key of a consistent-hash load balancer, or None."""
    balancer = policy.load_balancer if policy is not None else None
    hashing = balancer.consistent_hash if balancer is not None else None
    if hashing is None:
        return None
    if hashing.http_header_name:
        return rc.RouteAction.HashPolicy(
            header=rc.RouteAction.HashPolicy.Header(header_name=hashing.http_header_name)
        )
    cookie = hashing.http_cookie
    if cookie is not None and cookie.name:
        out = rc.RouteAction.HashPolicy(
            cookie=rc.RouteAction.HashPolicy.Cookie(name=cookie.name, path=cookie.path or "")
        )
        if cookie.ttl is not None:
            out.cookie.ttl.CopyFrom(protos.duration(cookie.ttl))
        return out
    if hashing.use_source_ip:
        return rc.RouteAction.HashPolicy(
            connection_properties=rc.RouteAction.HashPolicy.ConnectionProperties(source_ip=True)
        )
    return None


def _percent(percentage: Percent | None, legacy: int | None) -> float:
    if percentage is not None:
        return percentage.value
    return float(legacy) if legacy is not None else 100.0
