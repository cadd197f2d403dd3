"""Conversion between MCP values (:mod:`shared.contracts.mcp.snapshot`) and ``mcp.v1`` messages.

- :func:`resource_to_proto` / :func:`resource_from_proto`: one :class:`McpResource` ⇄
  ``Resource``. The body travels as a ``google.protobuf.Struct`` (via ``json_format``);
  ``Metadata.name`` is ``namespace/name``; version, labels and annotations are copied.
- :func:`resources_message`: builds a ``Resources`` message (full or incremental).
- :func:`apply_resources`: what a sink holds after a ``Resources`` message — a full message
  replaces the held snapshot, an incremental one is applied onto it.

Numbers: a ``Struct`` holds every number as a double, so integral values come back as
``int`` (``80``, never ``80.0``); integers beyond 2**53 lose precision on the wire.

Ownership: every function returns fresh objects the caller owns; inputs are not modified.
Errors: :class:`ValueError` (naming the resource) when a body holds a value JSON cannot
represent. Pure functions, safe from any task or thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import json_format, struct_pb2

from shared.contracts.mcp.snapshot import CollectionSnapshot, McpResource
from shared.contracts.mcp.v1 import mcp_pb2

_EXACT_DOUBLE_LIMIT = 2**53


def resource_to_proto(resource: McpResource) -> mcp_pb2.Resource:
    """``resource`` as a wire ``Resource``; :class:`ValueError` if its body is not JSON-like."""
    body = struct_pb2.Struct()
    try:
        json_format.ParseDict(_to_json(resource.body), body)
    except json_format.Error as exc:
        raise ValueError(f"resource {resource.name}: body is not JSON-like: {exc}") from exc
    return mcp_pb2.Resource(
        metadata=mcp_pb2.Metadata(
            name=resource.name,
            version=resource.version,
            labels=dict(resource.labels),
            annotations=dict(resource.annotations),
        ),
        body=body,
    )


def resource_from_proto(message: mcp_pb2.Resource) -> McpResource:
    """The :class:`McpResource` a wire ``Resource`` carries."""
    metadata = message.metadata
    body = _from_json(json_format.MessageToDict(message.body))
    return McpResource(
        name=metadata.name,
        version=metadata.version,
        body=body,
        labels=dict(metadata.labels),
        annotations=dict(metadata.annotations),
    )


def resources_message(
    *,
    collection: str,
    version: str,
    nonce: str,
    incremental: bool,
    resources: Iterable[McpResource],
    removed: Iterable[str] = (),
) -> mcp_pb2.Resources:
    """A ``Resources`` message; ``removed`` must be empty unless ``incremental``."""
    removed_names = list(removed)
    if removed_names and not incremental:
        raise ValueError(f"{collection}: removed names are only allowed in incremental pushes")
    return mcp_pb2.Resources(
        system_version_info=version,
        collection=collection,
        resources=[resource_to_proto(resource) for resource in resources],
        removed_resources=removed_names,
        nonce=nonce,
        incremental=incremental,
    )


def apply_resources(
    held: CollectionSnapshot | None, message: mcp_pb2.Resources
) -> CollectionSnapshot:
    """The snapshot a sink holding ``held`` has after ``message`` (``held`` is not modified).

    A full message replaces everything; an incremental one adds or replaces its resources
    and drops ``removed_resources`` (names it does not hold are ignored).
    """
    resources: dict[str, McpResource] = {}
    if message.incremental and held is not None:
        resources.update(held.resources)
        for name in message.removed_resources:
            resources.pop(name, None)
    for wire in message.resources:
        resource = resource_from_proto(wire)
        resources[resource.name] = resource
    return CollectionSnapshot(
        collection=message.collection, version=message.system_version_info, resources=resources
    )


def _to_json(value: Any) -> Any:
    """``value`` with every mapping as a dict and every sequence as a list (for json_format)."""
    if isinstance(value, Mapping):
        return {key: _to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(item) for item in value]
    return value


def _from_json(value: Any) -> Any:
    """``value`` with integral doubles turned back into ints."""
    if isinstance(value, dict):
        return {key: _from_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_json(item) for item in value]
    if isinstance(value, float) and value.is_integer() and abs(value) <= _EXACT_DOUBLE_LIMIT:
        return int(value)
    return value
