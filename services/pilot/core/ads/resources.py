"""Generated config packed for the wire: each resource as an ``Any`` with a content version.

A :class:`PackedLayer` holds resources (by type URL, then name) packed: each an ``Any``
with a version that is a hash of its serialized bytes, so equal content has an equal
version across snapshots and Pilot restarts. Packing is the expensive part of a push after
generation, so a proxy's :class:`PackedConfig` is two layers: a *shared* one (outbound
clusters and their load assignments, packed once and used by every proxy whose scopes plan
the same clusters) and the proxy's *own* one (its listeners, routes, inbound and Mixer
clusters), which wins where both hold a name. :func:`pack_layer` packs a
:class:`~services.pilot.core.model.ProxyConfig` into a layer, reusing already packed
messages (:func:`pack_all`). Layers keep no messages (a big route configuration takes
several times its packed size as a message); :attr:`PackedConfig.config` decodes them for
the debug views.

:meth:`PackedConfig.select` is what one watch of a proxy sees (a :class:`Selection`):
everything of the type for a wildcard watch, else the named resources. A named endpoint
assignment or route configuration that the config does not hold is answered with an empty
one of that name (Envoy would otherwise keep a cluster or listener warming forever).
Selections are memoized per layer, type and names: a watch that only sees the shared
layer gets the selection (and the response template) every proxy of that layer shares.

Packed values are immutable and safe to share between threads; selection memos are
filled on the event loop thread only.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from services.pilot.core.model import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    TYPE_URLS,
    ProxyConfig,
)

_Key = tuple[str, frozenset[str] | None]


@dataclass(frozen=True, slots=True)
class PackedResource:
    """One resource ready to send: its name, content version and packed message."""

    name: str
    version: str
    packed: any_pb2.Any


_V = TypeVar("_V")


class Layered(Mapping[str, _V]):
    """A read-only map of a shared ``base`` map and a small ``own`` one with other keys.

    Iterates the base's items, then its own. Comparing two of them compares base with base
    and own with own, each in C: they are equal when their parts are (their union could be
    equal with a different split; that only makes a caller send a response again).
    """

    __slots__ = ("base", "own")

    def __init__(self, base: Mapping[str, _V], own: Mapping[str, _V]) -> None:
        self.base = base
        self.own = own

    def __getitem__(self, key: str) -> _V:
        found = self.own.get(key)
        return found if found is not None else self.base[key]

    def __iter__(self) -> Iterator[str]:
        return itertools.chain(self.base, self.own)

    def __len__(self) -> int:
        return len(self.base) + len(self.own)

    def __contains__(self, key: object) -> bool:
        return key in self.own or key in self.base

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Layered):
            return bool(self.own == other.own and self.base == other.base)
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]  # a mapping: unhashable


@dataclass(frozen=True, slots=True)
class EncodedResponse:
    """A ``DiscoveryResponse`` or ``DeltaDiscoveryResponse`` already in wire form.

    :meth:`payload` is the serialized response: bytes a selection encoded once (``shared``,
    the same object for every stream that sends them) followed by this response's own
    fields (``own``: its nonce, a proxy's extra resources, removed names). In the protobuf
    wire format concatenated messages parse as their merge (repeated fields append), so the
    payload is one valid response. It is joined only when the response is written, so
    responses waiting to be sent hold no copy of the shared bytes.
    """

    type_url: str
    version_info: str
    nonce: str
    shared: bytes
    own: bytes
    message_type: type[Message] = discovery_pb2.DiscoveryResponse

    def payload(self) -> bytes:
        """The response's bytes, as they go on the wire."""
        return self.shared + self.own

    def decode(self) -> Message:
        """The response as a message (tests and debugging; the wire takes :meth:`payload`)."""
        return self.message_type.FromString(self.payload())


class Selection:
    """What one watch sees of a :class:`PackedConfig`: resources by name, in response order.

    ``versions`` maps each name to its content version. :meth:`sotw_response` is the
    state-of-the-world response carrying them, encoded: a selection serializes its
    resources once, and every stream's response is those bytes plus its nonce (serializing
    a response of a thousand resources per stream was most of a push's cost). A selection
    made of a shared ``base`` and a proxy's own resources (names not in ``base``) reuses the
    base's bytes and appends its own; its order is the base's, then its own (each sorted by
    name), as in the response.
    """

    __slots__ = (
        "_base",
        "_changes",
        "_delta",
        "_extra",
        "_own",
        "_payload",
        "resources",
        "type_url",
        "version",
        "versions",
    )

    def __init__(
        self,
        type_url: str,
        version: str,
        resources: Mapping[str, PackedResource],
        *,
        base: Selection | None = None,
    ) -> None:
        self.type_url = type_url
        self.version = version
        self._base = base
        own = self._own = dict(sorted(resources.items()))
        own_versions = {name: resource.version for name, resource in own.items()}
        if base is None:
            self.resources: Mapping[str, PackedResource] = MappingProxyType(own)
            self.versions: Mapping[str, str] = MappingProxyType(own_versions)
            self._extra: tuple[any_pb2.Any, ...] = ()
        else:  # views over the base's maps: a proxy's selection copies none of them
            self.resources = Layered(base.resources, own)
            self.versions = Layered(base.versions, own_versions)
            self._extra = tuple(resource.packed for resource in own.values())
        self._payload: bytes | None = None
        # Memos by the identity of a client's ``known`` map (held, so the id stays unique).
        self._changes: dict[
            tuple[int, frozenset[str]], tuple[Mapping[str, str], tuple[PackedResource, ...]]
        ] = {}
        self._delta: dict[int, tuple[Mapping[str, str], bytes]] = {}

    def sotw_response(self, nonce: str) -> EncodedResponse:
        """The response with every selected resource, this version and ``nonce``."""
        tail = discovery_pb2.DiscoveryResponse(nonce=nonce, resources=self._extra)
        own = tail.SerializeToString(deterministic=True)
        return EncodedResponse(self.type_url, self.version, nonce, self._shared_payload(), own)

    def _shared_payload(self) -> bytes:
        """The serialized response without nonce: the base's, or this selection's own."""
        if self._base is not None:
            return self._base._shared_payload()
        if self._payload is None:
            self._payload = discovery_pb2.DiscoveryResponse(
                version_info=self.version,
                type_url=self.type_url,
                resources=[resource.packed for resource in self.resources.values()],
            ).SerializeToString(deterministic=True)
        return self._payload

    def changed_since(
        self, known: Mapping[str, str], also: AbstractSet[str] = frozenset()
    ) -> tuple[PackedResource, ...]:
        """The selected resources whose version is not the one in ``known``, or named in
        ``also``; memoized for the last ``known`` seen (the streams of one push usually
        hold the same map, the selection they were sent before). A selection over a base
        asks the base about the base's part (with ``known``'s base part when ``known`` is a
        :class:`Layered` map too), so proxies share that work.
        """
        known = known or _NOTHING_KNOWN
        key = (id(known), frozenset(also))
        found = self._changes.get(key)
        if found is not None:
            return found[1]
        if self._base is not None:
            changed = self._base.changed_since(_base_part(known), also) + tuple(
                resource
                for name, resource in self._own.items()
                if known.get(name) != resource.version or name in also
            )
        else:
            changed = tuple(
                resource
                for name, resource in self.resources.items()
                if known.get(name) != resource.version or name in also
            )
        _remember(self._changes, key, (known, changed))
        return changed

    def delta_response(
        self, nonce: str, known: Mapping[str, str], removed: Sequence[str]
    ) -> EncodedResponse:
        """The delta response bringing a client that has ``known`` to this selection.

        Carries :meth:`changed_since` ``known`` and ``removed`` (names to drop). The encoded
        changes are memoized like :meth:`changed_since`, so streams share their bytes.
        """
        header = discovery_pb2.DeltaDiscoveryResponse(
            system_version_info=self.version,
            type_url=self.type_url,
            nonce=nonce,
            removed_resources=removed,
        ).SerializeToString(deterministic=True)
        shared, own = self._delta_body(known)
        return EncodedResponse(
            self.type_url,
            self.version,
            nonce,
            shared,
            own + header,
            message_type=discovery_pb2.DeltaDiscoveryResponse,
        )

    def _delta_body(self, known: Mapping[str, str]) -> tuple[bytes, bytes]:
        """The encoded changes since ``known``: shared bytes (a base's) and this one's own."""
        known = known or _NOTHING_KNOWN
        if self._base is not None:
            shared, _ = self._base._delta_body(_base_part(known))
            own = b"".join(
                _delta_entry(resource)
                for name, resource in self._own.items()
                if known.get(name) != resource.version
            )
            return shared, own
        found = self._delta.get(id(known))
        if found is None:
            body = b"".join(_delta_entry(resource) for resource in self.changed_since(known))
            found = (known, body)
            _remember(self._delta, id(known), found)
        return found[1], b""

    def sotw_changes(
        self, nonce: str, known: Mapping[str, str], *, also: AbstractSet[str] = frozenset()
    ) -> EncodedResponse:
        """Like :meth:`sotw_response`, with only :meth:`changed_since` ``known``.

        Only for types whose SotW responses are incremental (EDS, RDS): a client keeps the
        resources a response leaves out.
        """
        response = discovery_pb2.DiscoveryResponse(
            version_info=self.version,
            type_url=self.type_url,
            nonce=nonce,
            resources=[resource.packed for resource in self.changed_since(known, also)],
        )
        payload = response.SerializeToString(deterministic=True)
        return EncodedResponse(self.type_url, self.version, nonce, b"", payload)


class PackedLayer:
    """Packed resources of one or more types, with memoized selections.

    A layer with a ``parent`` answers for the types it does not hold from the parent (and
    its selections, shared with every other child): a scope's route layer over the cluster
    layer its namespace shares with others.
    """

    __slots__ = ("_selections", "parent", "resources", "version")

    def __init__(
        self,
        version: str,
        resources: Mapping[str, Mapping[str, PackedResource]],
        *,
        parent: PackedLayer | None = None,
    ) -> None:
        self.version = version
        self.resources = resources
        self.parent = parent
        self._selections: dict[_Key, Selection] = {}

    def relabeled(self, version: str) -> PackedLayer:
        """The same resources as a layer of snapshot ``version`` (nothing packed again)."""
        return PackedLayer(version, self.resources, parent=self.parent)

    def of_type(self, type_url: str) -> Mapping[str, PackedResource]:
        """The packed resources of one type (empty when none)."""
        found = self.resources.get(type_url)
        if found is None:
            return _NONE if self.parent is None else self.parent.of_type(type_url)
        return found

    def select(self, type_url: str, names: frozenset[str] | None) -> Selection:
        """This layer's view of a watch of ``names`` (``None``: wildcard); memoized."""
        if self.parent is not None and type_url not in self.resources:
            return self.parent.select(type_url, names)
        key = (type_url, names)
        selection = self._selections.get(key)
        if selection is None:
            selection = Selection(type_url, self.version, _selected(self.of_type(type_url), key))
            self._selections[key] = selection
        return selection

    def combined(
        self, type_url: str, names: frozenset[str] | None, shared: PackedLayer
    ) -> Selection:
        """A watch's view of this layer over ``shared`` (this layer wins); memoized here."""
        key = (type_url, names)
        selection = self._selections.get(key)
        if selection is None:
            of_type = self.of_type(type_url)
            mine = {n: r for n, r in of_type.items() if names is None or n in names}
            rest = None if names is None else frozenset(names - of_type.keys())
            base = shared.select(type_url, rest)
            if base.resources.keys().isdisjoint(mine):
                selection = Selection(type_url, self.version, mine, base=base)
            else:
                selection = Selection(type_url, self.version, {**base.resources, **mine})
            self._selections[key] = selection
        return selection


_NONE: Mapping[str, PackedResource] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class PackedConfig:
    """A proxy's whole config at one snapshot version, packed (see the module docstring)."""

    version: str
    own: PackedLayer
    shared: PackedLayer | None = None

    @property
    def config(self) -> ProxyConfig:
        """Every resource decoded to a message (own ones win): for debug views."""
        layers = [self.own] if self.shared is None else [self.shared, self.own]
        return ProxyConfig(
            resources={
                type_url: {
                    name: _decoded(type_url, resource.packed)
                    for layer in layers
                    for name, resource in layer.of_type(type_url).items()
                }
                for type_url in TYPE_URLS
            }
        )

    def select(self, type_url: str, names: Iterable[str] | None) -> Selection:
        """What a watch of ``names`` (``None``: wildcard) of ``type_url`` sees; memoized."""
        wanted = None if names is None else frozenset(names)
        shared = self.shared
        if shared is None or _misses(shared.of_type(type_url), wanted):
            return self.own.select(type_url, wanted)
        own = self.own.of_type(type_url)
        if _misses(own, wanted):
            return shared.select(type_url, wanted)
        return self.own.combined(type_url, wanted, shared)


def _misses(of_type: Mapping[str, PackedResource], wanted: frozenset[str] | None) -> bool:
    return not of_type or (wanted is not None and of_type.keys().isdisjoint(wanted))


def _selected(of_type: Mapping[str, PackedResource], key: _Key) -> dict[str, PackedResource]:
    type_url, names = key
    if names is None:
        return dict(of_type)
    selected: dict[str, PackedResource] = {}
    for name in names:
        found = of_type.get(name)
        if found is None:
            found = _placeholder(type_url, name)
        if found is not None:
            selected[name] = found
    return selected


def pack_layer(
    config: ProxyConfig, version: str, *, reuse: Mapping[int, PackedResource] | None = None
) -> PackedLayer:
    """Pack every resource of ``config`` (generated at snapshot ``version``) into a layer.

    ``reuse`` maps ``id(message)`` to an already packed message (see :func:`pack_all`):
    those messages are not packed again.
    """
    known = reuse or {}
    resources: dict[str, Mapping[str, PackedResource]] = {}
    for type_url, messages in config.resources.items():
        packed: dict[str, PackedResource] = {}
        for name, message in messages.items():
            found = known.get(id(message))
            packed[name] = (
                found if found is not None and found.name == name else pack_resource(name, message)
            )
        resources[type_url] = MappingProxyType(packed)
    return PackedLayer(version, MappingProxyType(resources))


def pack_all(messages: Iterable[tuple[str, Message]]) -> Mapping[int, PackedResource]:
    """Pack named messages, keyed by ``id(message)`` for :func:`pack_layer`'s ``reuse``.

    The caller must keep the messages alive as long as the result is used (ids are only
    unique among live objects).
    """
    return MappingProxyType(
        {id(message): pack_resource(name, message) for name, message in messages}
    )


def pack_resource(name: str, message: Message) -> PackedResource:
    """``message`` as an ``Any`` with a version derived from its deterministic bytes."""
    packed = any_pb2.Any()
    packed.Pack(message, deterministic=True)
    return PackedResource(
        name=name, version=hashlib.sha256(packed.value).hexdigest()[:16], packed=packed
    )


_MEMO_SIZE = 4  # distinct ``known`` maps remembered per selection (streams at various points)
_K = TypeVar("_K")


def _remember(memo: dict[_K, _V], key: _K, value: _V) -> None:
    """Store ``value``, dropping the oldest entry beyond :data:`_MEMO_SIZE`."""
    memo[key] = value
    if len(memo) > _MEMO_SIZE:
        del memo[next(iter(memo))]


_NOTHING_KNOWN: Mapping[str, str] = MappingProxyType({})  # every empty map, for the memos


def _base_part(known: Mapping[str, str]) -> Mapping[str, str]:
    """What a client that has ``known`` has of a selection's base part."""
    return known.base if isinstance(known, Layered) else known


def _delta_entry(resource: PackedResource) -> bytes:
    """``resource`` as one entry of a ``DeltaDiscoveryResponse``'s ``resources``."""
    entry = discovery_pb2.Resource(
        name=resource.name, version=resource.version, resource=resource.packed
    )
    response = discovery_pb2.DeltaDiscoveryResponse(resources=[entry])
    encoded: bytes = response.SerializeToString(deterministic=True)
    return encoded


_MESSAGE_TYPES: Mapping[str, type[Message]] = MappingProxyType(
    {
        CLUSTER_TYPE: cluster_pb2.Cluster,
        ENDPOINT_TYPE: endpoint_pb2.ClusterLoadAssignment,
        LISTENER_TYPE: listener_pb2.Listener,
        ROUTE_TYPE: route_pb2.RouteConfiguration,
    }
)


def _decoded(type_url: str, packed: any_pb2.Any) -> Message:
    message = _MESSAGE_TYPES[type_url]()
    packed.Unpack(message)
    return message


def _placeholder(type_url: str, name: str) -> PackedResource | None:
    if type_url == ENDPOINT_TYPE:
        return pack_resource(name, endpoint_pb2.ClusterLoadAssignment(cluster_name=name))
    if type_url == ROUTE_TYPE:
        return pack_resource(name, route_pb2.RouteConfiguration(name=name))
    return None
