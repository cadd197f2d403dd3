"""Quota calls from an RLS v3 ``RateLimitRequest`` (Envoy's rate-limit filter).

Each descriptor is one quota call. Its entries (what Pilot's rate-limit actions
produce) say which quota and carry the attributes its instance reads:

- ``quota`` (a ``generic_key`` action): the quota instance's name,
  ``requestcount.instance.shop`` (``name.namespace`` works too). A descriptor without
  one asks for no quota and is always OK.
- An Istio attribute name (``destination.service.host``, ``source.workload.name``,
  ``request.path``…): that attribute, typed like a context extension.
  ``request.headers[<name>]`` (a ``request_headers`` action) fills one header.
- Envoy's fixed keys: ``remote_address`` → ``source.ip``; ``source_cluster`` →
  ``source.workload.name``/``namespace`` (a node cluster); ``destination_cluster`` →
  ``destination.service.host`` and ``destination.port`` (``outbound|9080||host``).
- ``request.id`` (``x-request-id``) makes the allocation idempotent: its
  deduplication id is ``<request.id>/<quota>``.

The amount is the descriptor's ``hits_addend``, else the request's, else 1.
``destination.service.name``/``namespace`` and ``destination.namespace`` are derived
from the host. Pure; never raises on odd entries (unknown keys are ignored).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from envoy.service.ratelimit.v3 import rls_pb2

from services.mixer.adapters.attributes import (
    ip_of,
    parse_cluster,
    service_parts,
    split_node_cluster,
    typed_value,
)
from services.mixer.core.handlers.base import QuotaArgs
from shared.policy_expr import ATTRIBUTES, DictBag, Value

_HEADER = "request.headers["


@dataclass(frozen=True, slots=True)
class QuotaCall:
    """One descriptor's quota: which, how much, and the attributes it carries."""

    quota: str
    args: QuotaArgs
    bag: DictBag


def quota_calls(request: rls_pb2.RateLimitRequest) -> Sequence[QuotaCall | None]:
    """One call per descriptor, None for a descriptor that names no quota."""
    default_amount = request.hits_addend or 1
    calls: list[QuotaCall | None] = []
    for descriptor in request.descriptors:
        values: dict[str, Value] = {}
        headers: dict[str, str] = {}
        quota = ""
        for entry in descriptor.entries:
            key, value = entry.key, entry.value
            if key == "quota":
                quota = value
            elif key.startswith(_HEADER) and key.endswith("]"):
                headers[key[len(_HEADER) : -1].lower()] = value
            else:
                _fixed_or_attribute(key, value, values)
        if not quota:
            calls.append(None)
            continue
        if headers:
            values["request.headers"] = headers
        _derive(values)
        amount = descriptor.hits_addend.value if descriptor.HasField("hits_addend") else 0
        request_id = values.get("request.id")
        dedup = f"{request_id}/{quota}" if isinstance(request_id, str) and request_id else ""
        args = QuotaArgs(amount=int(amount) or default_amount, dedup_id=dedup)
        calls.append(QuotaCall(quota, args, DictBag(values)))
    return calls


def _fixed_or_attribute(key: str, value: str, values: dict[str, Value]) -> None:
    if key == "remote_address":
        address = ip_of(value)
        if address is not None:
            values["source.ip"] = address
    elif key == "source_cluster":
        workload = split_node_cluster(value)
        if workload is not None:
            values["source.workload.name"], values["source.workload.namespace"] = workload
    elif key == "destination_cluster":
        parsed = parse_cluster(value)
        if parsed is not None:
            _, port, host = parsed
            values["destination.service.host"] = host
            if port is not None:
                values["destination.port"] = port
    elif key in ATTRIBUTES:
        values[key] = typed_value(key, value)


def _derive(values: dict[str, Value]) -> None:
    parts = service_parts(values.get("destination.service.host"))
    if parts is not None:
        values.setdefault("destination.service.name", parts[0])
        values.setdefault("destination.service.namespace", parts[1])
        values.setdefault("destination.namespace", parts[1])
    workload_namespace = values.get("source.workload.namespace")
    if workload_namespace is not None:
        values.setdefault("source.namespace", workload_namespace)
