"""One VirtualService's HTTP rules as Envoy routes (Istio 1.4's ``TranslateRoute``).

Each HTTP rule gives one Envoy route per ``match`` (one catch-all route without
matches), in rule order. Matches: URI exact/prefix/regex (``path``/``prefix``/
``safe_regex``, ``ignoreUriCase``), headers, query parameters, ``withoutHeaders``
(inverted), method/authority/scheme as the ``:method``/``:authority``/``:scheme``
pseudo-headers; ``port``, ``gateways``, ``sourceLabels`` and ``sourceNamespace`` decide
whether a match applies to this proxy and listener at all. Actions: a cluster or weighted
clusters to subsets, redirect, rewrite, timeout (default 0s: none), retries (Istio's
default policy when unset, none for ``attempts: 0``), fault and CORS as
``typed_per_filter_config``, mirroring, header manipulation, and the consistent-hash key
of the destination's DestinationRule. Pure functions; one bad rule is skipped and
reported by the caller's :class:`~services.pilot.core.xds.problems.Problems`.

:class:`RouteMemo` reuses the routes of a VirtualService between scopes that share one
cluster plan (they differ only where a match names the source namespace or labels).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from envoy.config.route.v3 import route_components_pb2 as rc

from services.pilot.core.registry import fqdn
from services.pilot.core.snapshot import BoundVirtualService, MeshSnapshot, gateway_key
from services.pilot.core.xds import naming, protos
from services.pilot.core.xds.plan import PlannedCluster
from services.pilot.core.xds.problems import Problem, Problems
from services.pilot.core.xds.route_policies import (
    cors_policy,
    fault_filter,
    hash_policy,
    retry_policy,
)
from shared.config.networking_types import Destination, StringMatch
from shared.config.networking_virtualservice import (
    HeaderOperations,
    Headers,
    HTTPMatchRequest,
    HTTPRoute,
)

_REDIRECT_CODES = {
    301: rc.RedirectAction.MOVED_PERMANENTLY,
    302: rc.RedirectAction.FOUND,
    303: rc.RedirectAction.SEE_OTHER,
    307: rc.RedirectAction.TEMPORARY_REDIRECT,
    308: rc.RedirectAction.PERMANENT_REDIRECT,
}
_DEFAULT_PORT = 80


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteContext:
    """Where routes are being built: which gateway, listener port, proxy and clusters."""

    snapshot: MeshSnapshot
    gateway: str
    port: int | None
    proxy_namespace: str
    proxy_labels: Mapping[str, str]
    clusters: Mapping[str, PlannedCluster]


class RouteMemo:
    """Routes of VirtualServices already built for one snapshot and one cluster plan.

    :meth:`routes` is :func:`virtual_service_routes` with a memo. The routes of a
    VirtualService depend on the gateway and listener port, the plan (hash policies), and
    the proxy's namespace or labels only when one of its matches names ``sourceNamespace``
    or ``sourceLabels``; the memo key holds exactly that, so every context given to one memo
    must share its snapshot and ``clusters``. Problems found while building are kept and
    replayed into each caller's collector. Thread-safe: two threads may build one entry at
    once (the results are equal; one is kept). The returned lists are shared: read-only.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[object, ...], _Memoized] = {}
        self._sources: dict[int, tuple[BoundVirtualService, bool, bool]] = {}

    def routes(
        self, bound: BoundVirtualService, context: RouteContext, problems: Problems
    ) -> list[rc.Route]:
        """:func:`virtual_service_routes` of ``bound`` in ``context``, built once per key."""
        by_namespace, by_labels = self._source_dependence(bound)
        key = (
            id(bound),
            context.gateway,
            context.port,
            context.proxy_namespace if by_namespace else None,
            tuple(sorted(context.proxy_labels.items())) if by_labels else None,
        )
        found = self._entries.get(key)
        if found is None:
            local = Problems(_keep)
            built = virtual_service_routes(bound, context, local)
            found = self._entries.setdefault(key, _Memoized(bound, built, tuple(local.found)))
        for problem in found.problems:
            problems.add(problem)
        return found.routes

    def _source_dependence(self, bound: BoundVirtualService) -> tuple[bool, bool]:
        """Whether some match of ``bound`` names the source namespace, or source labels."""
        found = self._sources.get(id(bound))
        if found is None:
            matches = [match for rule in bound.spec.http for match in rule.match]
            found = (  # holding bound keeps its id unique while the entry lives
                bound,
                any(m.source_namespace for m in matches),
                any(m.source_labels for m in matches),
            )
            self._sources[id(bound)] = found
        return found[1], found[2]


@dataclass(frozen=True, slots=True)
class _Memoized:
    bound: BoundVirtualService  # holds the object alive, so its id in the key stays unique
    routes: list[rc.Route]
    problems: tuple[Problem, ...]


def _keep(problem: Problem) -> None:
    """A sink for problems that are replayed into another collector later."""


def virtual_service_routes(
    bound: BoundVirtualService, context: RouteContext, problems: Problems
) -> list[rc.Route]:
    """The Envoy routes of every HTTP rule of ``bound`` that applies in ``context``."""
    routes: list[rc.Route] = []
    for index, rule in enumerate(bound.spec.http):
        with problems.guard(f"{bound.resource.ref} spec.http[{index}]"):
            routes.extend(_rule_routes(bound, rule, context, problems))
    return routes


def default_route(cluster: str, context: RouteContext) -> rc.Route:
    """The route of a service without VirtualService: all paths, Istio's default retries."""
    route = rc.Route(name="default", match=rc.RouteMatch(prefix="/"))
    route.route.cluster = cluster
    route.route.timeout.SetInParent()
    policy = retry_policy(None)
    if policy is not None:
        route.route.retry_policy.CopyFrom(policy)
    planned = context.clusters.get(cluster)
    hashing = hash_policy(planned.policy if planned is not None else None)
    if hashing is not None:
        route.route.hash_policy.append(hashing)
    return route


def is_catch_all(route: rc.Route) -> bool:
    """True for a route that matches every request (moved last when fragments merge)."""
    match = route.match
    return (
        match.WhichOneof("path_specifier") == "prefix"
        and match.prefix == "/"
        and not match.headers
        and not match.query_parameters
    )


def _rule_routes(
    bound: BoundVirtualService, rule: HTTPRoute, context: RouteContext, problems: Problems
) -> list[rc.Route]:
    matches: Sequence[HTTPMatchRequest | None] = rule.match or (None,)
    routes = []
    for match in matches:
        if match is not None and not _applies(match, bound.namespace, context):
            continue
        route = rc.Route(match=_route_match(match))
        if rule.name:
            route.name = (
                rule.name if match is None or not match.name else f"{rule.name}.{match.name}"
            )
        _actions(route, bound, rule, context, problems)
        routes.append(route)
    return routes


def _applies(match: HTTPMatchRequest, namespace: str, context: RouteContext) -> bool:
    if match.port is not None and context.port is not None and match.port != context.port:
        return False
    if match.gateways and context.gateway not in {
        gateway_key(g, namespace) for g in match.gateways
    }:
        return False
    if any(context.proxy_labels.get(k) != v for k, v in match.source_labels.items()):
        return False
    return match.source_namespace is None or match.source_namespace == context.proxy_namespace


def _route_match(match: HTTPMatchRequest | None) -> rc.RouteMatch:
    if match is None:
        return rc.RouteMatch(prefix="/")
    out = rc.RouteMatch()
    uri = match.uri
    if uri is not None and uri.exact is not None:
        out.path = uri.exact
    elif uri is not None and uri.regex:
        out.safe_regex.CopyFrom(protos.regex_matcher(uri.regex))
    else:
        out.prefix = uri.prefix if uri is not None and uri.prefix is not None else "/"
    if match.ignore_uri_case:
        out.case_sensitive.value = False
    pseudo = {":method": match.method, ":authority": match.authority, ":scheme": match.scheme}
    for name, value in (*pseudo.items(), *match.headers.items()):
        if value is not None:
            out.headers.append(_header_matcher(name, value, invert=False))
    for name, value in match.without_headers.items():
        out.headers.append(_header_matcher(name, value, invert=True))
    for name, value in match.query_params.items():
        query = rc.QueryParameterMatcher(name=name)
        if protos.is_presence_match(value):
            query.present_match = True
        else:
            query.string_match.CopyFrom(protos.string_matcher(value))
        out.query_parameters.append(query)
    return out


def _header_matcher(name: str, value: StringMatch, *, invert: bool) -> rc.HeaderMatcher:
    matcher = rc.HeaderMatcher(name=name.lower(), invert_match=invert)
    if protos.is_presence_match(value):
        matcher.present_match = True
    else:
        matcher.string_match.CopyFrom(protos.string_matcher(value))
    return matcher


def _actions(
    route: rc.Route,
    bound: BoundVirtualService,
    rule: HTTPRoute,
    context: RouteContext,
    problems: Problems,
) -> None:
    ref = bound.resource.ref
    if rule.redirect is not None:
        redirect = rule.redirect
        if redirect.uri:
            route.redirect.path_redirect = redirect.uri
        if redirect.authority:
            route.redirect.host_redirect = redirect.authority
        code = redirect.redirect_code or 301
        if code not in _REDIRECT_CODES:
            problems.note(ref, f"redirect code {code} is not supported by Envoy; using 301")
        route.redirect.response_code = _REDIRECT_CODES.get(code, _REDIRECT_CODES[301])
    else:
        _forward(route, bound, rule, context, problems)
    _headers(route, rule.headers, ref, problems)
    if rule.fault is not None:
        route.typed_per_filter_config[naming.FAULT_FILTER].CopyFrom(
            protos.pack(fault_filter(rule.fault))
        )
    if rule.cors_policy is not None:
        route.typed_per_filter_config[naming.CORS_FILTER].CopyFrom(
            protos.pack(cors_policy(rule.cors_policy))
        )


def _forward(
    route: rc.Route,
    bound: BoundVirtualService,
    rule: HTTPRoute,
    context: RouteContext,
    problems: Problems,
) -> None:
    action = route.route
    # As in Istio, a weight of 0 (or none) leaves a destination out unless it is alone.
    weighted = [(d, d.weight or 0) for d in rule.route if d.weight] or [(rule.route[0], 0)]
    names = [_cluster_name(d.destination, bound.namespace, context) for d, _ in weighted]
    if len(weighted) == 1:
        action.cluster = names[0]
        _headers(route, weighted[0][0].headers, bound.resource.ref, problems)
    else:
        for (destination, weight), name in zip(weighted, names, strict=True):
            cluster = action.weighted_clusters.clusters.add(name=name)
            cluster.weight.value = weight
            _headers(cluster, destination.headers, bound.resource.ref, problems)
    if rule.timeout:
        action.timeout.CopyFrom(protos.duration(rule.timeout))
    else:
        action.timeout.SetInParent()  # Istio's default: no timeout (0s)
    policy = retry_policy(rule.retries)
    if policy is not None:
        action.retry_policy.CopyFrom(policy)
    if rule.rewrite is not None:
        if rule.rewrite.uri:
            action.prefix_rewrite = rule.rewrite.uri
        if rule.rewrite.authority:
            action.host_rewrite_literal = rule.rewrite.authority
    if rule.mirror is not None:
        mirror = action.request_mirror_policies.add(
            cluster=_cluster_name(rule.mirror, bound.namespace, context)
        )
        percent = 100.0
        if rule.mirror_percentage is not None:
            percent = rule.mirror_percentage.value
        elif rule.mirror_percent is not None:
            percent = float(rule.mirror_percent)
        mirror.runtime_fraction.default_value.CopyFrom(protos.fraction(percent))
    for name in names:
        planned = context.clusters.get(name)
        hashing = hash_policy(planned.policy if planned is not None else None)
        if hashing is not None:
            action.hash_policy.append(hashing)
            break


def _cluster_name(destination: Destination, namespace: str, context: RouteContext) -> str:
    host = fqdn(destination.host, namespace)
    return naming.outbound_cluster(
        _destination_port(destination, host, context), host, destination.subset or ""
    )


def _destination_port(destination: Destination, host: str, context: RouteContext) -> int:
    if destination.port is not None and destination.port.number is not None:
        return destination.port.number
    service = context.snapshot.service(host)
    if service is None or not service.ports:
        return context.port or _DEFAULT_PORT
    if len(service.ports) == 1:
        return service.ports[0].number
    if context.port is not None and service.port(context.port) is not None:
        return context.port
    http = [port for port in service.ports if port.is_http]
    return (http or list(service.ports))[0].number


def _headers(
    target: rc.Route | rc.WeightedCluster.ClusterWeight,
    headers: Headers | None,
    ref: str,
    problems: Problems,
) -> None:
    """Request and response header edits on a route or on one weighted cluster."""
    if headers is None:
        return
    request, response = _modifiable(headers.request, ref, problems), headers.response
    target.request_headers_to_add.extend(protos.header_options(request))
    target.request_headers_to_remove.extend(protos.headers_to_remove(request))
    target.response_headers_to_add.extend(protos.header_options(response))
    target.response_headers_to_remove.extend(protos.headers_to_remove(response))


def _modifiable(
    operations: HeaderOperations | None, ref: str, problems: Problems
) -> HeaderOperations | None:
    """Drop edits of the Host header, which Envoy refuses (use ``rewrite.authority``)."""
    if operations is None:
        return None
    names = [*operations.set, *operations.add, *operations.remove]
    if not any(name.lower() == "host" for name in names):
        return operations
    problems.note(ref, "the host header cannot be set, added or removed; use rewrite.authority")
    return operations.model_copy(
        update={
            "set": {k: v for k, v in operations.set.items() if k.lower() != "host"},
            "add": {k: v for k, v in operations.add.items() if k.lower() != "host"},
            "remove": tuple(name for name in operations.remove if name.lower() != "host"),
        }
    )
