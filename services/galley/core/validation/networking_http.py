"""HTTPRoute rules of a VirtualService, as Istio's ``validateHTTPRoute`` checks them.

:func:`check_http_route` records every problem of one HTTP route into a :class:`Report`
under the route's path (``spec.http[2]``) and never raises. Pure function, safe to
call from any task.
"""

from __future__ import annotations

from collections.abc import Mapping

from services.galley.core.validation.common import check_labels, check_port
from services.galley.core.validation.networking_checks import (
    check_destination,
    check_duration,
    check_gateway_names,
    check_header_name,
    check_int_percent,
    check_percent,
    check_string_match,
    check_weights,
)
from services.galley.core.validation.report import Report
from shared.config.networking_types import StringMatch
from shared.config.networking_virtualservice import (
    CorsPolicy,
    Headers,
    HTTPFaultInjection,
    HTTPMatchRequest,
    HTTPRedirect,
    HTTPRetry,
    HTTPRoute,
)

_HTTP_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE"}
)
_RETRY_ON = frozenset(
    {
        "5xx",
        "gateway-error",
        "reset",
        "reset-before-request",
        "connect-failure",
        "retriable-4xx",
        "refused-stream",
        "retriable-status-codes",
        "retriable-headers",
        "envoy-ratelimited",
        "http3-post-connect-failure",
        "cancelled",
        "deadline-exceeded",
        "internal",
        "resource-exhausted",
        "unavailable",
    }
)


def check_http_route(report: Report, path: str, http: HTTPRoute) -> None:
    """Matches, destinations and weights, and every action of one HTTP route."""
    if http.redirect is not None:
        if http.route:
            report.error(f"{path}.redirect", "HTTP route cannot contain both route and redirect")
        if http.rewrite is not None:
            report.error(f"{path}.rewrite", "HTTP route cannot contain both rewrite and redirect")
        if http.fault is not None:
            report.error(f"{path}.fault", "fault injection cannot be used with redirect")
        _check_redirect(report, f"{path}.redirect", http.redirect)
    elif not http.route:
        report.error(f"{path}.route", "HTTP route or redirect is required")
    for index, match in enumerate(http.match):
        _check_http_match(report, f"{path}.match[{index}]", match)
    for index, destination in enumerate(http.route):
        item = f"{path}.route[{index}]"
        check_destination(report, f"{item}.destination", destination.destination)
        _check_header_operations(report, f"{item}.headers", destination.headers)
    check_weights(report, f"{path}.route", [destination.weight for destination in http.route])
    if http.rewrite is not None and not (http.rewrite.uri or http.rewrite.authority):
        report.error(f"{path}.rewrite", "rewrite must specify uri, authority, or both")
    if http.timeout is not None:
        check_duration(report, f"{path}.timeout", http.timeout)
    if http.retries is not None:
        _check_retries(report, f"{path}.retries", http.retries)
    if http.fault is not None:
        _check_fault(report, f"{path}.fault", http.fault)
    _check_mirror(report, path, http)
    if http.cors_policy is not None:
        _check_cors(report, f"{path}.corsPolicy", http.cors_policy)
    _check_header_operations(report, f"{path}.headers", http.headers)


def _check_http_match(report: Report, path: str, match: HTTPMatchRequest) -> None:
    for name, value in (
        ("uri", match.uri),
        ("scheme", match.scheme),
        ("method", match.method),
        ("authority", match.authority),
    ):
        if value is not None:
            check_string_match(report, f"{path}.{name}", value)
    _check_match_map(report, f"{path}.headers", match.headers, header_names=True)
    _check_match_map(report, f"{path}.withoutHeaders", match.without_headers, header_names=True)
    _check_match_map(report, f"{path}.queryParams", match.query_params, header_names=False)
    if match.port is not None:
        check_port(report, f"{path}.port", match.port)
    check_labels(report, f"{path}.sourceLabels", match.source_labels)
    check_gateway_names(report, f"{path}.gateways", match.gateways)


def _check_match_map(
    report: Report, path: str, matches: Mapping[str, StringMatch], *, header_names: bool
) -> None:
    for name, value in matches.items():
        item = f"{path}.{name}"
        if header_names:
            check_header_name(report, item, name)
        check_string_match(report, item, value)


def _check_retries(report: Report, path: str, retries: HTTPRetry) -> None:
    if retries.attempts < 0:
        report.error(f"{path}.attempts", f"attempts {retries.attempts} cannot be negative")
    if retries.per_try_timeout is not None:
        check_duration(report, f"{path}.perTryTimeout", retries.per_try_timeout)
    if retries.retry_on is None:
        return
    for raw in retries.retry_on.split(","):
        policy = raw.strip()
        if policy not in _RETRY_ON and not (policy.isdigit() and 100 <= int(policy) <= 599):
            report.error(f"{path}.retryOn", f"{policy!r} is not a valid retryOn policy")


def _check_fault(report: Report, path: str, fault: HTTPFaultInjection) -> None:
    if fault.delay is None and fault.abort is None:
        report.error(path, "HTTP fault injection must have an abort and/or a delay")
    if fault.delay is not None:
        delay = f"{path}.delay"
        if fault.delay.fixed_delay is None:
            report.error(f"{delay}.fixedDelay", "delay fault requires fixedDelay")
        else:
            check_duration(report, f"{delay}.fixedDelay", fault.delay.fixed_delay)
        if fault.delay.percentage is not None:
            check_percent(report, f"{delay}.percentage", fault.delay.percentage)
        if fault.delay.percent is not None:
            check_int_percent(report, f"{delay}.percent", fault.delay.percent)
    if fault.abort is not None:
        abort = f"{path}.abort"
        status = fault.abort.http_status
        if status is None:
            report.error(f"{abort}.httpStatus", "abort fault requires httpStatus")
        elif not 200 <= status <= 599:
            report.error(f"{abort}.httpStatus", f"HTTP status {status} is not in range 200-599")
        if fault.abort.percentage is not None:
            check_percent(report, f"{abort}.percentage", fault.abort.percentage)
        if fault.abort.percent is not None:
            check_int_percent(report, f"{abort}.percent", fault.abort.percent)


def _check_mirror(report: Report, path: str, http: HTTPRoute) -> None:
    if http.mirror is not None:
        check_destination(report, f"{path}.mirror", http.mirror)
    if http.mirror_percent is not None:
        check_int_percent(report, f"{path}.mirrorPercent", http.mirror_percent)
    if http.mirror_percentage is not None:
        check_percent(report, f"{path}.mirrorPercentage", http.mirror_percentage)


def _check_cors(report: Report, path: str, cors: CorsPolicy) -> None:
    for index, origin in enumerate(cors.allow_origins):
        check_string_match(report, f"{path}.allowOrigins[{index}]", origin)
    if cors.allow_origin:
        report.warning(f"{path}.allowOrigin", "allowOrigin is deprecated; use allowOrigins")
    for index, method in enumerate(cors.allow_methods):
        if method not in _HTTP_METHODS:
            report.error(f"{path}.allowMethods[{index}]", f"{method!r} is not an HTTP method")
    for field, names in (
        ("allowHeaders", cors.allow_headers),
        ("exposeHeaders", cors.expose_headers),
    ):
        for index, name in enumerate(names):
            if name != "*":
                check_header_name(report, f"{path}.{field}[{index}]", name)
    max_age = cors.max_age
    if max_age is None or not check_duration(report, f"{path}.maxAge", max_age):
        return
    if max_age.microseconds:
        report.error(f"{path}.maxAge", "maxAge is accurate only to whole seconds")


def _check_redirect(report: Report, path: str, redirect: HTTPRedirect) -> None:
    """A redirect names a new URI and/or authority; its code, if set, is a 3xx."""
    if not (redirect.uri or redirect.authority):
        report.error(path, "redirect must specify uri, authority, or both")
    code = redirect.redirect_code
    if code is not None and code != 0 and not 300 <= code <= 399:
        report.error(f"{path}.redirectCode", f"{code} is not a valid redirect code, must be 3xx")


def _check_header_operations(report: Report, path: str, headers: Headers | None) -> None:
    """Header names to set, add or remove on the request and the response."""
    if headers is None:
        return
    for part, operations in (("request", headers.request), ("response", headers.response)):
        if operations is None:
            continue
        for field, names in (("set", operations.set), ("add", operations.add)):
            for name in names:
                check_header_name(report, f"{path}.{part}.{field}.{name}", name)
        for index, name in enumerate(operations.remove):
            check_header_name(report, f"{path}.{part}.remove[{index}]", name)
