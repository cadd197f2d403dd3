"""Pilot's view of Galley's config: collection snapshots in, mesh snapshots out.

:meth:`ConfigStore.apply` is the handler of the config feed (``ports.ConfigFeed``). It takes
the newest :class:`CollectionSnapshot` of a collection and parses each body back into a
typed :class:`~shared.config.Resource` with :func:`shared.config.parse_object` (a resource
whose version did not change is not parsed again). Once every collection in
``collections`` has arrived (the store is *synced*), each change builds a new immutable
:class:`MeshSnapshot`: the parsed resources plus the services of the ServiceEntry registry
(:func:`services_from_service_entries`). Its version is derived from the collection
versions, so equal config has an equal version, also across Pilot restarts. The snapshot is
handed to the sink (the discovery server) with ``full=True`` unless only EDS endpoints
changed; a change that alters nothing Envoy sees is not handed on (and the current snapshot
stays the one handed on last). A collection pushed again unchanged (a reconnect) is a no-op.

Errors: a body that does not parse, or a snapshot that cannot be built, raises
:class:`ConfigRejectedError` naming the resource and the problem; the feed NACKs the push
with that text and the store keeps what it held (the last good config keeps serving).

The store is also the local :class:`~services.pilot.core.registry.ServiceRegistry`
(:meth:`ConfigStore.services`). Task safety: use from one event loop; ``apply`` is awaited
one call at a time (the MCP client guarantees it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from services.pilot.core.registry import Service, services_from_service_entries
from services.pilot.core.snapshot import MeshSnapshot
from shared.config import KindInfo, Resource, kinds_by_collection, parse_object
from shared.contracts.mcp.snapshot import CollectionSnapshot, McpResource

_GROUPS = ("networking.istio.io", "security.istio.io", "mesh.istio.io", "config.istio.io")


def pilot_collections() -> tuple[str, ...]:
    """The MCP collections Pilot follows: networking, security and the mesh config."""
    return tuple(c for c, info in kinds_by_collection().items() if info.group in _GROUPS)


class ConfigRejectedError(ValueError):
    """A pushed collection cannot be used; the message says which resource and why."""


class SnapshotSink(Protocol):
    """Where new mesh snapshots go (the discovery server)."""

    def update(self, snapshot: MeshSnapshot, *, full: bool) -> None:
        """Push ``snapshot``; ``full`` False means only EDS endpoints changed."""
        ...


@dataclass(frozen=True, slots=True)
class CollectionStatus:
    """One collection as /debug/configz shows it: version and resource versions by name."""

    version: str
    resources: dict[str, str]


@dataclass(frozen=True, slots=True)
class ConfigStatus:
    """Whether every collection arrived, the mesh version, collections and problems."""

    synced: bool
    version: str | None
    services: int
    collections: dict[str, CollectionStatus]
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Held:
    snapshot: CollectionSnapshot
    parsed: Mapping[str, tuple[str, Resource]]


class ConfigStore:
    """Holds the newest config per collection and builds mesh snapshots from it."""

    def __init__(self, *, sink: SnapshotSink, collections: Sequence[str] | None = None) -> None:
        self._sink = sink
        self._collections = tuple(pilot_collections() if collections is None else collections)
        kinds = kinds_by_collection()
        unknown = [c for c in self._collections if c not in kinds]
        if unknown:
            raise ValueError(f"unknown collections: {unknown}")
        self._kinds = {collection: kinds[collection] for collection in self._collections}
        self._held: dict[str, _Held] = {}
        self._mesh: MeshSnapshot | None = None

    @property
    def collections(self) -> tuple[str, ...]:
        """The collections this store follows."""
        return self._collections

    @property
    def synced(self) -> bool:
        """True once every collection has been received and accepted."""
        return self._mesh is not None

    @property
    def snapshot(self) -> MeshSnapshot | None:
        """The newest mesh snapshot (None until synced)."""
        return self._mesh

    def services(self) -> tuple[Service, ...]:
        """The services of the current config's ServiceEntries."""
        return () if self._mesh is None else self._mesh.services

    async def apply(self, snapshot: CollectionSnapshot) -> None:
        """Take the newest state of one collection; raise :class:`ConfigRejectedError`."""
        info = self._kinds.get(snapshot.collection)
        if info is None:
            raise ConfigRejectedError(f"Pilot does not follow collection {snapshot.collection}")
        previous = self._held.get(snapshot.collection)
        if previous is not None and _same(previous.snapshot, snapshot):
            return
        held = {**self._held, snapshot.collection: _parse(info, snapshot, previous)}
        if set(held) != set(self._collections):
            self._held = held
            return
        resources = [resource for item in held.values() for _, resource in item.parsed.values()]
        try:
            mesh = MeshSnapshot.build(
                resources,
                services_from_service_entries(resources),
                version=_version(held),
            )
        except Exception as exc:  # Pilot must survive any config Galley lets through
            raise ConfigRejectedError(f"cannot build the mesh snapshot: {exc!r}") from exc
        self._held = held
        change = mesh.change_from(self._mesh)
        if change != "none":
            self._mesh = mesh
            self._sink.update(mesh, full=change == "full")

    def status(self) -> ConfigStatus:
        """What /debug/configz shows."""
        mesh = self._mesh
        return ConfigStatus(
            synced=mesh is not None,
            version=None if mesh is None else mesh.version,
            services=0 if mesh is None else len(mesh.services),
            collections={
                collection: CollectionStatus(
                    version=item.snapshot.version,
                    resources=item.snapshot.resource_versions(),
                )
                for collection, item in sorted(self._held.items())
            },
            problems=() if mesh is None else tuple(str(problem) for problem in mesh.problems),
        )


def _parse(info: KindInfo, snapshot: CollectionSnapshot, previous: _Held | None) -> _Held:
    parsed: dict[str, tuple[str, Resource]] = {}
    reuse = {} if previous is None else previous.parsed
    for name, resource in snapshot.resources.items():
        known = reuse.get(name)
        if known is not None and known[0] == resource.version:
            parsed[name] = known
        else:
            parsed[name] = (resource.version, _resource(info, snapshot.collection, resource))
    return _Held(snapshot=snapshot, parsed=parsed)


def _resource(info: KindInfo, collection: str, resource: McpResource) -> Resource:
    namespace, _, name = resource.name.rpartition("/")
    metadata: dict[str, object] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    if resource.labels:
        metadata["labels"] = dict(resource.labels)
    if resource.annotations:
        metadata["annotations"] = dict(resource.annotations)
    document = {
        "apiVersion": info.api_version,
        "kind": info.kind,
        "metadata": metadata,
        "spec": dict(resource.body),
    }
    parsed, issues = parse_object(document, f"mcp:{collection}")
    if parsed is None:
        detail = "; ".join(str(issue) for issue in issues) or "unreadable"
        raise ConfigRejectedError(f"{info.kind} {resource.name}: {detail}")
    return parsed


def _same(held: CollectionSnapshot, pushed: CollectionSnapshot) -> bool:
    return held.version == pushed.version and held.resource_versions() == pushed.resource_versions()


def _version(held: Mapping[str, _Held]) -> str:
    text = "\n".join(f"{c}={held[c].snapshot.version}" for c in sorted(held))
    return hashlib.sha256(text.encode()).hexdigest()[:12]
