"""What one watch of a proxy sees, and packed resources as they go on the wire.

A :class:`PackedResource` is one resource as an ``Any`` with a content version (a hash of
its deterministic bytes: equal content, equal version, across snapshots and restarts).
A :class:`Selection` is the resources one watch sees, in response order, with their
versions; it encodes state-of-the-world and delta responses once and shares the bytes
between every stream that sends them (:class:`EncodedResponse`: shared bytes plus a
stream's own fields). A selection over a shared ``base`` (a proxy's own resources on top of
what many proxies share) is a :class:`Layered` view of the base's maps, copying none of
them. Selections memoize what changed since a client's ``known`` versions per map
identity, since the streams of one push usually hold the same map.

Values are immutable once built except the memos, which are filled on the event loop
thread only.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message


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
    """What one watch sees of a proxy's packed config: resources by name, in response order.

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
        ``also``; memoized for the last few ``known`` maps seen (the streams of one push
        usually hold the same map, the selection they were sent before). A selection over
        a base asks the base about the base's part (with ``known``'s base part when
        ``known`` is a :class:`Layered` map too), so proxies share that work.
        """
        known = known or _NOTHING_KNOWN
        key = (id(known), frozenset(also))
        found = self._changes.get(key)
        if found is not None:
            return found[1]
        if self._base is not None:
            changed = self._base.changed_since(_base_part(known), also) + _changed(
                self._own, known, also
            )
        else:
            changed = _changed(self.resources, known, also)
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
            own = b"".join(_delta_entry(resource) for resource in _changed(self._own, known))
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


def _changed(
    resources: Mapping[str, PackedResource],
    known: Mapping[str, str],
    also: AbstractSet[str] = frozenset(),
) -> tuple[PackedResource, ...]:
    """``resources`` whose version is not the one ``known``, or named in ``also``."""
    return tuple(
        resource
        for name, resource in resources.items()
        if known.get(name) != resource.version or name in also
    )


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
