"""Transport-free values for what MCP carries: resources and per-collection snapshots.

Galley's core builds :class:`CollectionSnapshot` values; the MCP client hands them to
subscribers. Both are immutable and safe to share between tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


def _empty() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class McpResource:
    """One config object on the wire: ``namespace/name``, version, spec body, metadata."""

    name: str
    version: str
    body: Mapping[str, Any]
    labels: Mapping[str, str] = field(default_factory=_empty)
    annotations: Mapping[str, str] = field(default_factory=_empty)


@dataclass(frozen=True, slots=True)
class CollectionSnapshot:
    """The whole state of one collection at one version. ``resources`` is keyed by name."""

    collection: str
    version: str
    resources: Mapping[str, McpResource]

    def resource_versions(self) -> dict[str, str]:
        """name → version, as a resuming subscriber reports it."""
        return {name: resource.version for name, resource in self.resources.items()}
