"""A parsed config object: kind, metadata, typed spec, and where it came from."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from shared.config.base import SpecModel
from shared.config.kinds import KindInfo

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """The metadata splitmesh keeps: name, namespace, labels and annotations."""

    name: str
    namespace: str
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY)

    @property
    def full_name(self) -> str:
        """``namespace/name``: the resource name used on the MCP wire."""
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Resource:
    """One valid-typed config object. Immutable; safe to share between tasks."""

    kind: KindInfo
    metadata: ObjectMeta
    spec: SpecModel
    source: str = ""
    line: int | None = None

    @property
    def ref(self) -> str:
        """``Kind namespace/name`` as messages print it."""
        return f"{self.kind.kind} {self.metadata.full_name}"

    @property
    def collection(self) -> str:
        """The MCP collection this object travels in."""
        return self.kind.collection

    def body(self) -> dict[str, Any]:
        """The spec as a JSON-compatible dict with Istio field names."""
        return self.spec.to_wire()

    def content_version(self) -> str:
        """A version derived from the content only: equal objects, equal versions."""
        payload = {
            "spec": self.body(),
            "labels": dict(self.metadata.labels),
            "annotations": dict(self.metadata.annotations),
        }
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        return digest[:16]
