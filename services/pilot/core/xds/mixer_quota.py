"""Rate-limit descriptors that ask Mixer for quota, derived from Mixer's quota rules.

Which quotas: every ``rule`` action whose handler is a ``memquota`` or ``redisquota``
adapter sends its ``quota``-template instances to it; each such instance is one quota,
named ``<instance>.instance.<namespace>`` (how memquota/redisquota params name it).
Like Istio 1.4, where QuotaSpecs were attached to the *server's* inbound routes only,
quota is asked on the inbound route of a sidecar, once per request, one descriptor per
quota that may apply to that destination: a rule applies when it lives in the root
namespace or in the destination's (the proxy's) namespace, and its ``match`` is
evaluated here when it reads only what Pilot knows of the destination (a false match
drops the descriptor); otherwise Mixer evaluates it. Mixer evaluates the instance's
dimensions; Envoy only carries the attributes they read.

Descriptor contract (read by ``services/mixer/adapters/quota_request.py``). Entries,
in order; Istio attribute → Envoy rate-limit action → descriptor entry key:

- the quota: ``generic_key`` → ``quota`` = ``requestcount.instance.shop``;
- always ``destination.service.host`` and ``destination.namespace`` (rule scope), and
  ``request.id`` (Mixer's deduplication id) from the ``x-request-id`` header;
- destination attributes Pilot knows (:data:`DESTINATION_ATTRIBUTES`): ``generic_key``
  → the attribute name, value as text (ints in decimal, maps as JSON objects);
- ``request.headers["x-user"]``: ``request_headers`` → ``request.headers[x-user]``
  (header names lower case); ``request.path``/``host``/``method``/``scheme``/
  ``useragent``/``referer``/``id``: ``request_headers`` of ``:path``, ``:authority``,
  ``:method``, ``:scheme``, ``user-agent``, ``referer``, ``x-request-id`` → the attribute
  name. Header actions skip an absent header (``skip_if_absent``), so the descriptor is
  still sent and Mixer applies ``|`` defaults;
- ``source.ip``: ``remote_address`` → ``remote_address`` (Envoy's trusted client address);
- ``source.workload.name``/``namespace``, ``source.namespace``: ``request_headers`` of
  ``x-envoy-downstream-service-cluster`` (the caller's node cluster
  ``<workload>.<namespace>``, which client sidecars add in Mixer mode) → ``source_cluster``.
  It is a hint the caller sets, as in Envoy: a non-mesh client can forge it.

Not expressible (reported as problems, then left out of the descriptor, so a match
reading them does not hold and a dimension reading them takes its ``|`` default):
``source.principal``/``user``/``labels``/``uid``/``serviceAccount``,
``connection.*``, ``request.auth.*``, ``request.size``/``total_size``/``time``,
``request.url_path``/``query_params`` (Envoy has no action for the path without its
query, and Mixer reads no query entries), ``context.protocol``, ``response.*`` (quota is
asked before there is a response), and ``request.headers`` read other than by constant
keys. Pure functions; values are immutable.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from envoy.config.route.v3 import route_components_pb2 as rc

from services.pilot.core.model import InboundPort, Proxy
from services.pilot.core.snapshot import MeshSnapshot
from services.pilot.core.xds.problems import Problems
from shared.config import Resource
from shared.config.policy import HandlerSpec, InstanceSpec, RuleSpec
from shared.policy_expr import (
    DictBag,
    EvaluationError,
    Expression,
    ExpressionError,
    MissingAttributeError,
    Value,
    compile_expression,
    compile_match,
)

QUOTA_ADAPTERS = frozenset({"memquota", "redisquota"})
QUOTA_KEY = "quota"
SOURCE_CLUSTER_KEY = "source_cluster"
SOURCE_CLUSTER_HEADER = "x-envoy-downstream-service-cluster"
REQUEST_HEADERS = "request.headers"

DESTINATION_ATTRIBUTES = frozenset(
    {
        "destination.service.host",
        "destination.service.name",
        "destination.service.namespace",
        "destination.namespace",
        "destination.workload.name",
        "destination.workload.namespace",
        "destination.labels",
        "destination.port",
        "context.reporter.kind",
    }
)
"""What Pilot knows of an inbound destination (see :func:`destination_attributes`)."""

HEADER_ATTRIBUTES: Mapping[str, str] = {
    "request.path": ":path",
    "request.host": ":authority",
    "request.method": ":method",
    "request.scheme": ":scheme",
    "request.useragent": "user-agent",
    "request.referer": "referer",
    "request.id": "x-request-id",
}
"""Request attributes Envoy reads from one header (pseudo-headers included)."""

SOURCE_CLUSTER_ATTRIBUTES = frozenset(
    {"source.workload.name", "source.workload.namespace", "source.namespace"}
)
_ALWAYS = ("destination.service.host", "destination.namespace", "request.id")
_REMOTE_ADDRESS = "source.ip"


@dataclass(frozen=True, slots=True)
class ScopedMatch:
    """A rule's ``match`` and its scope: ``namespace`` None means every destination."""

    rule: str
    namespace: str | None
    match: Expression


@dataclass(frozen=True, slots=True)
class QuotaPlan:
    """One quota, the rules that ask for it, and the attributes its descriptor carries."""

    quota: str
    matches: tuple[ScopedMatch, ...]
    attributes: tuple[str, ...]
    header_keys: tuple[str, ...]


def plan_quotas(snapshot: MeshSnapshot, problems: Problems) -> tuple[QuotaPlan, ...]:
    """Every quota of the snapshot's rules, by quota name (see the module docstring)."""
    handlers = _index(snapshot.of_kind("handler"))
    instances = _index(snapshot.of_kind("instance"))
    root = snapshot.mesh.root_namespace
    found: dict[str, tuple[list[ScopedMatch], set[str], set[str]]] = {}
    for rule in snapshot.of_kind("rule"):
        spec = rule.spec
        if not isinstance(spec, RuleSpec):
            continue
        with problems.guard(rule.ref):
            namespace = rule.metadata.namespace
            quotas = _rule_quotas(spec, namespace, handlers, instances)
            if not quotas:
                continue
            try:
                match = compile_match(spec.match)
            except ExpressionError as exc:
                problems.note(rule.ref, f"match does not compile ({exc}); its quotas are skipped")
                continue
            scoped = ScopedMatch(rule.ref, None if namespace == root else namespace, match)
            for quota, instance in quotas:
                matches, attributes, keys = found.setdefault(quota, ([], set(), set()))
                matches.append(scoped)
                for expression in (match, *_dimensions(instance)):
                    _carry(expression, rule.ref, attributes, keys, problems)
    return tuple(
        QuotaPlan(
            quota=quota,
            matches=tuple(matches),
            attributes=tuple(sorted(attributes - {REQUEST_HEADERS} - set(_ALWAYS))),
            header_keys=tuple(sorted(keys)),
        )
        for quota, (matches, attributes, keys) in sorted(found.items())
    )


def destination_attributes(proxy: Proxy, inbound: InboundPort) -> dict[str, Value]:
    """What Pilot knows of the destination of requests on ``inbound`` (its own workload)."""
    attributes: dict[str, Value] = {
        "destination.service.host": inbound.service,
        "destination.namespace": proxy.namespace,
        "destination.workload.name": proxy.workload_name,
        "destination.workload.namespace": proxy.namespace,
        "destination.port": inbound.port,
        "context.reporter.kind": "inbound",
    }
    parts = inbound.service.split(".")
    if len(parts) >= 3 and parts[2] == "svc":
        attributes["destination.service.name"] = parts[0]
        attributes["destination.service.namespace"] = parts[1]
    if proxy.labels:
        attributes["destination.labels"] = dict(proxy.labels)
    return attributes


def render(value: Value) -> str:
    """An attribute value as text Mixer parses back (maps as JSON, bools lower case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return json.dumps(dict(value), sort_keys=True, separators=(",", ":"))
    return str(value)


def rate_limits(plans: Iterable[QuotaPlan], destination: Mapping[str, Value]) -> list[rc.RateLimit]:
    """One rate limit (descriptor) per quota that may apply to ``destination``."""
    return [
        rc.RateLimit(actions=_actions(plan, destination))
        for plan in plans
        if any(_may_apply(scoped, destination) for scoped in plan.matches)
    ]


def _may_apply(scoped: ScopedMatch, destination: Mapping[str, Value]) -> bool:
    if scoped.namespace is not None and destination.get("destination.namespace") != (
        scoped.namespace
    ):
        return False
    if not scoped.match.referenced <= destination.keys():
        return True  # Mixer decides with the request's attributes
    try:
        return scoped.match.evaluate(DictBag(destination)) is True
    except MissingAttributeError:
        return False
    except EvaluationError:
        return True  # Mixer counts the failure and applies the fail policy


def _actions(plan: QuotaPlan, destination: Mapping[str, Value]) -> list[rc.RateLimit.Action]:
    actions = [_generic(QUOTA_KEY, plan.quota)]
    keys = {QUOTA_KEY}
    for attribute in (*_ALWAYS, *plan.attributes):
        key, action = _action(attribute, destination)
        if action is not None and key not in keys:
            keys.add(key)
            actions.append(action)
    for header in plan.header_keys:
        actions.append(_header(header, f"{REQUEST_HEADERS}[{header}]"))
    return actions


def _action(
    attribute: str, destination: Mapping[str, Value]
) -> tuple[str, rc.RateLimit.Action | None]:
    if attribute in DESTINATION_ATTRIBUTES:
        value = destination.get(attribute)
        text = "" if value is None else render(value)
        return attribute, _generic(attribute, text) if text else None
    if attribute in HEADER_ATTRIBUTES:
        return attribute, _header(HEADER_ATTRIBUTES[attribute], attribute)
    if attribute in SOURCE_CLUSTER_ATTRIBUTES:
        return SOURCE_CLUSTER_KEY, _header(SOURCE_CLUSTER_HEADER, SOURCE_CLUSTER_KEY)
    # source.ip: the one expressible attribute left (plans hold expressible ones only)
    remote = rc.RateLimit.Action(remote_address=rc.RateLimit.Action.RemoteAddress())
    return "remote_address", remote


def _generic(key: str, value: str) -> rc.RateLimit.Action:
    return rc.RateLimit.Action(
        generic_key=rc.RateLimit.Action.GenericKey(descriptor_key=key, descriptor_value=value)
    )


def _header(name: str, key: str) -> rc.RateLimit.Action:
    return rc.RateLimit.Action(
        request_headers=rc.RateLimit.Action.RequestHeaders(
            header_name=name, descriptor_key=key, skip_if_absent=True
        )
    )


def _carry(
    expression: Expression, ref: str, attributes: set[str], keys: set[str], problems: Problems
) -> None:
    """Record what a descriptor must carry for ``expression``; note what it cannot."""
    for attribute in expression.referenced:
        if attribute == REQUEST_HEADERS:
            header_keys = expression.referenced_keys.get(attribute)
            if header_keys is None:
                problems.note(ref, _lost("request.headers read other than by constant keys"))
            else:
                keys.update(key.lower() for key in header_keys)
        elif _expressible(attribute):
            attributes.add(attribute)
        else:
            problems.note(ref, _lost(attribute))


def _expressible(attribute: str) -> bool:
    return (
        attribute in DESTINATION_ATTRIBUTES
        or attribute in HEADER_ATTRIBUTES
        or attribute in SOURCE_CLUSTER_ATTRIBUTES
        or attribute == _REMOTE_ADDRESS
    )


def _lost(what: str) -> str:
    return (
        f"quota: {what} cannot be carried to Mixer by Envoy's rate-limit actions; "
        "quota requests go without it"
    )


def _rule_quotas(
    spec: RuleSpec,
    namespace: str,
    handlers: Mapping[tuple[str, str], Resource],
    instances: Mapping[tuple[str, str], Resource],
) -> list[tuple[str, InstanceSpec]]:
    """``(quota name, instance)`` for each quota instance the rule sends to a quota handler."""
    quotas: list[tuple[str, InstanceSpec]] = []
    for action in spec.actions or ():
        handler = _lookup(action.handler, namespace, handlers)
        if handler is None or not isinstance(handler.spec, HandlerSpec):
            continue
        if handler.spec.adapter_name not in QUOTA_ADAPTERS:
            continue
        for reference in action.instances or ():
            instance = _lookup(reference, namespace, instances)
            if (
                instance is not None
                and isinstance(instance.spec, InstanceSpec)
                and instance.spec.template_name == "quota"
            ):
                name = f"{instance.metadata.name}.instance.{instance.metadata.namespace}"
                quotas.append((name, instance.spec))
    return quotas


def _dimensions(instance: InstanceSpec) -> list[Expression]:
    """The instance's compiled dimensions (ones that do not compile are Galley's to reject)."""
    dimensions = (instance.params or {}).get("dimensions") or {}
    compiled = []
    for text in dimensions.values() if isinstance(dimensions, Mapping) else ():
        try:
            compiled.append(compile_expression(str(text)))
        except ExpressionError:
            continue
    return compiled


def _index(resources: Iterable[Resource]) -> dict[tuple[str, str], Resource]:
    return {(r.metadata.namespace, r.metadata.name): r for r in resources}


def _lookup(
    reference: str, namespace: str, index: Mapping[tuple[str, str], Resource]
) -> Resource | None:
    """Istio's reference forms: ``name``, ``name.namespace``, ``name.kind.namespace``."""
    parts = reference.split(".")
    keys = [(namespace, reference)]
    if len(parts) in (2, 3):
        keys.append((parts[-1], parts[0]))
    return next((index[key] for key in keys if key in index), None)
