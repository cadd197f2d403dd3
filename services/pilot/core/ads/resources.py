"""A proxy's generated config packed for the wire, in layers it shares with other proxies.

A :class:`PackedLayer` holds resources (by type URL, then name) packed
(:class:`~services.pilot.core.ads.selection.PackedResource`: an ``Any`` with a content
version). Packing is the expensive part of a push after generation, so a proxy's
:class:`PackedConfig` is two layers: a *shared* one (outbound clusters and their load
assignments, packed once and used by every proxy whose scopes plan the same clusters,
under a per-namespace layer holding the ``outbound_http`` routes) and the proxy's *own*
one (its listeners, inbound routes, inbound and Mixer clusters), which wins where both
hold a name. :func:`pack_layer` packs a :class:`~services.pilot.core.model.ProxyConfig`
into a layer, reusing already packed messages. Layers keep no messages
(a big route configuration takes several times its packed size as a message);
:attr:`PackedConfig.config` decodes them for the debug views.

:meth:`PackedConfig.select` is what one watch of a proxy sees (a
:class:`~services.pilot.core.ads.selection.Selection`): everything of the type for a
wildcard watch, else the named resources. A named endpoint assignment or route
configuration that the config does not hold is answered with an empty one of that name
(Envoy would otherwise keep a cluster or listener warming forever). Selections are
memoized per layer, type and names: a watch that only sees a shared layer gets the
selection (and its encoded responses) every proxy of that layer shares.

Packed values are immutable and safe to share between threads; selection memos are
filled on the event loop thread only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from services.pilot.core.ads.selection import PackedResource, Selection, pack_resource
from services.pilot.core.model import (
    ENDPOINT_TYPE,
    MESSAGE_TYPES,
    ROUTE_TYPE,
    TYPE_URLS,
    ProxyConfig,
)

_Key = tuple[str, frozenset[str] | None]


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

    ``reuse`` maps ``id(message)`` to the already packed form of a message (the caller
    keeps those messages alive: ids are unique only among live objects): they are not
    packed again.
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


def _decoded(type_url: str, packed: any_pb2.Any) -> Message:
    message = MESSAGE_TYPES[type_url]()
    packed.Unpack(message)
    return message


def _placeholder(type_url: str, name: str) -> PackedResource | None:
    if type_url == ENDPOINT_TYPE:
        return pack_resource(name, endpoint_pb2.ClusterLoadAssignment(cluster_name=name))
    if type_url == ROUTE_TYPE:
        return pack_resource(name, route_pb2.RouteConfiguration(name=name))
    return None
