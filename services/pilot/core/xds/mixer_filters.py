"""Mixer mode: the Envoy config through which sidecars call Mixer (contract with Mixer).

Stock Envoy has no Mixer filter; Pilot configures Envoy's own extension APIs instead,
when MeshConfig turns Mixer on (:mod:`.mixer_mode`: ``mixerCheckServer`` with
``disablePolicyChecks: false`` for policy, ``mixerReportServer`` with
``disableMixerHttpReports: false`` for telemetry). Where, following Istio 1.4
(``pilot/pkg/networking/plugin/mixer``): Check and quota run on the *server* side only —
inbound HCMs of sidecars; a sidecar's outbound side never checked
(``disableClientPolicyChecks`` is true for sidecars unless
``enableClientSidePolicyCheck``, a field splitmesh does not have) and quota specs were
bound to inbound routes only. Istio 1.4 also checked on gateways (routers); splitmesh
does not yet. Reports come from both sides, like Istio's ``reporter=source|destination``.

What Pilot sends (Mixer reads exactly this; change both sides together):

- Clusters :data:`~.naming.MIXER_POLICY_CLUSTER` (``mixer-policy``, from
  ``mixerCheckServer``) and :data:`~.naming.MIXER_TELEMETRY_CLUSTER`
  (``mixer-telemetry``, from ``mixerReportServer``): HTTP/2, STATIC for an IP or a
  ``unix://`` path, else STRICT_DNS (IPv4), MeshConfig ``connectTimeout``.
- Policy, on every sidecar inbound HTTP connection manager, before the router:
  ``envoy.filters.http.ext_authz`` (gRPC to ``mixer-policy``, API V3, timeout
  :data:`POLICY_TIMEOUT`, ``failure_mode_allow`` = ``policyCheckFailOpen``, no request
  body, ``include_peer_certificate``, HTTP 503 when Mixer cannot be reached and the
  check fails closed), then ``envoy.filters.http.ratelimit`` (domain
  :data:`RATE_LIMIT_DOMAIN` ``mixer``, RLS V3 to ``mixer-policy``, timeout
  :data:`POLICY_TIMEOUT`, ``failure_mode_deny`` = not ``policyCheckFailOpen``, 503 on
  error; over quota Envoy answers 429).
- On the inbound route (``inbound|<port>``, route ``default``): ext_authz per-route
  ``check_settings.context_extensions`` with the destination attributes Pilot knows,
  by Istio attribute name, as text (:func:`~.mixer_quota.render`: ints in decimal, maps
  as JSON objects): ``destination.service.host`` (the inbound's service),
  ``destination.service.name``/``namespace`` (for ``<name>.<namespace>.svc…`` hosts),
  ``destination.namespace``, ``destination.workload.name``/``namespace`` (the proxy),
  ``destination.labels`` (the proxy's labels, when it has any), ``destination.port``
  (the inbound port) and ``context.reporter.kind`` = ``inbound``. And ``rate_limits``:
  one descriptor per quota that may apply (the descriptor contract is in
  :mod:`.mixer_quota`).
- Every HTTP connection manager (outbound, inbound, gateway) when telemetry is on: an
  ``access_log`` ``envoy.access_loggers.http_grpc`` (``HttpGrpcAccessLogConfig``,
  ``log_name`` :data:`ACCESS_LOG_NAME` ``mixer``, gRPC to ``mixer-telemetry``, API V3,
  ``buffer_flush_interval`` = ``reportBatchMaxTime``; ``reportBatchMaxEntries`` has no
  Envoy equivalent) logging request headers :data:`BASE_LOGGED_HEADERS` plus every
  header a rule's ``match`` or an instance's params read as ``request.headers["…"]``
  (via ``Expression.referenced_keys``), and response headers read as
  ``response.headers["…"]``. ``user-agent``, ``referer``, ``x-request-id``,
  ``:authority`` and ``:path`` are not listed: the entry carries them as fields.
- Outbound and gateway connection managers (whenever Mixer mode is on) set
  ``add_user_agent``: Envoy then sends its node cluster ``<workload>.<namespace>`` in
  ``x-envoy-downstream-service-cluster``, which ext_authz reports as the source peer's
  ``service``, the quota descriptor carries as ``source_cluster`` and the inbound
  access log records — the source workload on the server side. It is a hint the
  caller sets (Envoy's own caveat), not an identity; principals come with mTLS.

Pilot adds no other request headers and no ``metadata_context_namespaces``.

:func:`mixer_plan` computes everything that depends on the snapshot only, once per
config digest (a small thread-safe memo); :class:`MixerPlan` is immutable and shared:
its messages are copied into each proxy's resources, never mutated. Problems found
(unparsable addresses, attributes Envoy cannot carry) are kept in ``problems``; the
caller replays them into its own collector.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import config_source_pb2, grpc_service_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.ratelimit.v3 import rls_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.access_loggers.grpc.v3 import als_pb2
from envoy.extensions.filters.http.ext_authz.v3 import ext_authz_pb2
from envoy.extensions.filters.http.ratelimit.v3 import rate_limit_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.v3 import http_status_pb2
from google.protobuf import any_pb2

from services.pilot.core.model import InboundPort, Proxy
from services.pilot.core.snapshot import MeshSnapshot
from services.pilot.core.xds import naming, protos
from services.pilot.core.xds.clusters import HTTP_OPTIONS_KEY
from services.pilot.core.xds.listeners import HttpOptions
from services.pilot.core.xds.mixer_mode import MixerMode, MixerServer, mixer_mode
from services.pilot.core.xds.mixer_quota import (
    REQUEST_HEADERS,
    SOURCE_CLUSTER_HEADER,
    QuotaPlan,
    destination_attributes,
    plan_quotas,
    rate_limits,
    render,
)
from services.pilot.core.xds.problems import Problem, Problems
from shared.config.policy import InstanceSpec, RuleSpec
from shared.policy_expr import Expression, ExpressionError, compile_expression, compile_match

RATE_LIMIT_DOMAIN = "mixer"
ACCESS_LOG_NAME = "mixer"
POLICY_TIMEOUT = timedelta(seconds=1)
"""Envoy's wait for Check and quota: above Mixer's own quota timeout (0.2 s by default)."""
BASE_LOGGED_HEADERS = ("content-type", SOURCE_CLUSTER_HEADER)
"""Request headers every report logs: ``context.protocol`` and the source workload."""
RESPONSE_HEADERS = "response.headers"
_V3 = config_source_pb2.ApiVersion.V3
_UNAVAILABLE = http_status_pb2.HttpStatus(code=http_status_pb2.StatusCode.ServiceUnavailable)
_Cluster = cluster_pb2.Cluster


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """What Mixer mode puts on an inbound route (empty when policy is off)."""

    typed_per_filter_config: Mapping[str, any_pb2.Any] = field(
        default_factory=lambda: MappingProxyType({})
    )
    rate_limits: tuple[rc.RateLimit, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class MixerPlan:
    """Mixer mode for one config digest (see the module docstring)."""

    mode: MixerMode
    quotas: tuple[QuotaPlan, ...]
    clusters: Mapping[str, cluster_pb2.Cluster]
    inbound: HttpOptions | None
    outbound: HttpOptions | None
    problems: tuple[Problem, ...]

    def inbound_route(self, proxy: Proxy, inbound: InboundPort) -> RoutePolicy:
        """Context extensions and quota descriptors for the route of ``inbound``."""
        if self.mode.check is None:
            return RoutePolicy()
        attributes = destination_attributes(proxy, inbound)
        per_route = ext_authz_pb2.ExtAuthzPerRoute(
            check_settings=ext_authz_pb2.CheckSettings(
                context_extensions={name: render(value) for name, value in attributes.items()}
            )
        )
        return RoutePolicy(
            typed_per_filter_config=MappingProxyType(
                {naming.EXT_AUTHZ_FILTER: protos.pack(per_route)}
            ),
            rate_limits=tuple(rate_limits(self.quotas, attributes)),
        )

    def report(self, problems: Problems) -> None:
        """Replay the plan's problems into a generation call's collector."""
        for problem in self.problems:
            problems.add(problem)


def mixer_plan(snapshot: MeshSnapshot) -> MixerPlan:
    """The Mixer plan of ``snapshot``, computed once per config digest."""
    return _PLANS.plan(snapshot)


def build_plan(snapshot: MeshSnapshot) -> MixerPlan:
    """Compute the Mixer plan of ``snapshot`` (:func:`mixer_plan` memoizes this)."""
    problems = Problems(_keep)
    mode = mixer_mode(snapshot.mesh)
    for message in mode.bad_addresses:
        problems.note("MeshConfig", message)
    clusters: dict[str, cluster_pb2.Cluster] = {}
    filters: tuple[hcm.HttpFilter, ...] = ()
    logs: tuple[accesslog_pb2.AccessLog, ...] = ()
    quotas: tuple[QuotaPlan, ...] = ()
    timeout = snapshot.mesh.connect_timeout
    if mode.check is not None:
        clusters[naming.MIXER_POLICY_CLUSTER] = _cluster(
            naming.MIXER_POLICY_CLUSTER, mode.check, timeout
        )
        filters = (_ext_authz(mode.fail_open), _rate_limit(mode.fail_open))
        quotas = plan_quotas(snapshot, problems)
    if mode.report is not None:
        clusters[naming.MIXER_TELEMETRY_CLUSTER] = _cluster(
            naming.MIXER_TELEMETRY_CLUSTER, mode.report, timeout
        )
        request, response = _logged_headers(snapshot, problems)
        logs = (_access_log(request, response, snapshot.mesh.report_batch_max_time),)
    active = mode.active
    return MixerPlan(
        mode=mode,
        quotas=quotas,
        clusters=MappingProxyType(clusters),
        inbound=HttpOptions(filters=filters, access_log=logs) if active else None,
        outbound=HttpOptions(access_log=logs, add_user_agent=True) if active else None,
        problems=tuple(problems.found),
    )


def _keep(_problem: Problem) -> None:
    """Plan problems are kept and replayed per generation call, not logged here."""


class _PlanMemo:
    """The plans of the most recent config digests; thread-safe."""

    def __init__(self, *, max_entries: int) -> None:
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._plans: dict[str, MixerPlan] = {}

    def plan(self, snapshot: MeshSnapshot) -> MixerPlan:
        key = snapshot.config_digest
        with self._lock:
            found = self._plans.get(key)
        if found is not None:
            return found
        made = build_plan(snapshot)
        with self._lock:
            kept = self._plans.setdefault(key, made)
            while len(self._plans) > self._max_entries:
                del self._plans[next(iter(self._plans))]
        return kept


_PLANS = _PlanMemo(max_entries=8)


def _grpc(cluster: str, timeout: timedelta | None = None) -> grpc_service_pb2.GrpcService:
    service = grpc_service_pb2.GrpcService(
        envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=cluster)
    )
    if timeout is not None:
        service.timeout.CopyFrom(protos.duration(timeout))
    return service


def _ext_authz(fail_open: bool) -> hcm.HttpFilter:
    config = ext_authz_pb2.ExtAuthz(
        grpc_service=_grpc(naming.MIXER_POLICY_CLUSTER, POLICY_TIMEOUT),
        transport_api_version=_V3,
        failure_mode_allow=fail_open,
        include_peer_certificate=True,
        status_on_error=_UNAVAILABLE,
    )
    return hcm.HttpFilter(name=naming.EXT_AUTHZ_FILTER, typed_config=protos.pack(config))


def _rate_limit(fail_open: bool) -> hcm.HttpFilter:
    config = rate_limit_pb2.RateLimit(
        domain=RATE_LIMIT_DOMAIN,
        timeout=protos.duration(POLICY_TIMEOUT),
        failure_mode_deny=not fail_open,
        rate_limit_service=rls_pb2.RateLimitServiceConfig(
            grpc_service=_grpc(naming.MIXER_POLICY_CLUSTER), transport_api_version=_V3
        ),
        status_on_error=_UNAVAILABLE,
    )
    return hcm.HttpFilter(name=naming.RATE_LIMIT_FILTER, typed_config=protos.pack(config))


def _access_log(
    request_headers: tuple[str, ...], response_headers: tuple[str, ...], flush: timedelta
) -> accesslog_pb2.AccessLog:
    config = als_pb2.HttpGrpcAccessLogConfig(
        common_config=als_pb2.CommonGrpcAccessLogConfig(
            log_name=ACCESS_LOG_NAME,
            grpc_service=_grpc(naming.MIXER_TELEMETRY_CLUSTER),
            transport_api_version=_V3,
            buffer_flush_interval=protos.duration(flush),
        ),
        additional_request_headers_to_log=request_headers,
        additional_response_headers_to_log=response_headers,
    )
    return accesslog_pb2.AccessLog(name=naming.GRPC_ACCESS_LOG, typed_config=protos.pack(config))


def _cluster(name: str, server: MixerServer, connect_timeout: timedelta) -> cluster_pb2.Cluster:
    cluster = _Cluster(name=name, type=_Cluster.STATIC)
    if not server.is_ip_or_pipe:
        cluster.type = _Cluster.STRICT_DNS
        cluster.dns_lookup_family = _Cluster.V4_ONLY
    cluster.connect_timeout.CopyFrom(protos.duration(connect_timeout))
    endpoint = endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(address=protos.address(server.host, server.port))
    )
    cluster.load_assignment.CopyFrom(
        endpoint_pb2.ClusterLoadAssignment(
            cluster_name=name,
            endpoints=[endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=[endpoint])],
        )
    )
    options = http_protocol_options_pb2.HttpProtocolOptions()
    options.explicit_http_config.http2_protocol_options.SetInParent()
    cluster.typed_extension_protocol_options[HTTP_OPTIONS_KEY].CopyFrom(protos.pack(options))
    return cluster


def _logged_headers(
    snapshot: MeshSnapshot, problems: Problems
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Request and response headers that rules and instances read by constant keys."""
    request: set[str] = set()
    response: set[str] = set()
    for ref, expression in _expressions(snapshot):
        for attribute, found in ((REQUEST_HEADERS, request), (RESPONSE_HEADERS, response)):
            if attribute not in expression.referenced:
                continue
            keys = expression.referenced_keys.get(attribute)
            if keys is None:
                problems.note(
                    ref,
                    f"reports: {attribute} is read as a whole; only headers named by "
                    "constant keys are logged for Mixer",
                )
            else:
                found.update(key.lower() for key in keys)
    base = set(BASE_LOGGED_HEADERS)
    return (*BASE_LOGGED_HEADERS, *sorted(request - base)), tuple(sorted(response))


def _expressions(snapshot: MeshSnapshot) -> Iterator[tuple[str, Expression]]:
    """Every rule ``match`` and instance param that compiles (Galley rejects the rest)."""
    for rule in snapshot.of_kind("rule"):
        if isinstance(rule.spec, RuleSpec) and rule.spec.match.strip():
            yield from _compiled(rule.ref, [rule.spec.match], match=True)
    for instance in snapshot.of_kind("instance"):
        if isinstance(instance.spec, InstanceSpec):
            yield from _compiled(instance.ref, _strings(instance.spec.params), match=False)


def _compiled(ref: str, texts: list[str], *, match: bool) -> Iterator[tuple[str, Expression]]:
    for text in texts:
        try:
            yield ref, compile_match(text) if match else compile_expression(text)
        except ExpressionError:
            continue


def _strings(value: object) -> list[str]:
    """The string leaves of an instance's params (its expressions)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list | tuple):
        return [text for item in value for text in _strings(item)]
    return []
