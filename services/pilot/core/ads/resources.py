"""Generated config packed for the wire: each resource as an ``Any`` with a content version.

:func:`pack` turns the :class:`~services.pilot.core.model.ProxyConfig` that ``generate()``
returned into a :class:`PackedConfig`: per type URL, resource name → :class:`PackedResource`
(the ``Any`` and a version that is a hash of its serialized bytes, so equal content has an
equal version across snapshots and Pilot restarts). Packing is the expensive part of a push
after generation, so the generation cache packs the messages proxies share once
(:func:`pack_all`) and :func:`pack` reuses them.

:meth:`PackedConfig.select` is what one watch of a proxy sees (a :class:`Selection`):
everything of the type for a wildcard watch, else the named resources. A named endpoint
assignment or route configuration that the config does not hold is answered with an empty
one of that name (Envoy would otherwise keep a cluster or listener warming forever).
Selections are memoized per type and names, since proxies of one scope share the config.

Packed values are immutable and safe to share between threads; the selection memo of a
:class:`PackedConfig` is filled on the event loop thread only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.route.v3 import route_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from services.pilot.core.model import ENDPOINT_TYPE, ROUTE_TYPE, TYPE_URLS, ProxyConfig


@dataclass(frozen=True, slots=True)
class PackedResource:
    """One resource ready to send: its name, content version and packed message."""

    name: str
    version: str
    packed: any_pb2.Any


class Selection:
    """What one watch sees of a :class:`PackedConfig`: resources by name, in name order.

    ``versions`` maps each name to its content version. :meth:`sotw_response` is the
    state-of-the-world response carrying them, built once and copied per stream (a copy is
    far cheaper than packing a response of a thousand resources again).
    """

    __slots__ = ("_template", "resources", "type_url", "version", "versions")

    def __init__(self, type_url: str, version: str, resources: Mapping[str, PackedResource]):
        self.type_url = type_url
        self.version = version
        self.resources = MappingProxyType(dict(sorted(resources.items())))
        self.versions = MappingProxyType({n: r.version for n, r in self.resources.items()})
        self._template: discovery_pb2.DiscoveryResponse | None = None

    def sotw_response(self, nonce: str) -> discovery_pb2.DiscoveryResponse:
        """A ``DiscoveryResponse`` with every selected resource, this version and ``nonce``."""
        if self._template is None:
            self._template = discovery_pb2.DiscoveryResponse(
                version_info=self.version,
                type_url=self.type_url,
                resources=[resource.packed for resource in self.resources.values()],
            )
        response = discovery_pb2.DiscoveryResponse()
        response.CopyFrom(self._template)
        response.nonce = nonce
        return response


@dataclass(frozen=True, slots=True)
class PackedConfig:
    """A proxy's whole config at one snapshot version, packed (see the module docstring)."""

    version: str
    config: ProxyConfig
    resources: Mapping[str, Mapping[str, PackedResource]]
    _selections: dict[tuple[str, frozenset[str] | None], Selection] = field(
        default_factory=dict, compare=False, repr=False
    )

    def select(self, type_url: str, names: Iterable[str] | None) -> Selection:
        """What a watch of ``names`` (``None``: wildcard) of ``type_url`` sees; memoized."""
        key = (type_url, None if names is None else frozenset(names))
        selection = self._selections.get(key)
        if selection is None:
            selection = Selection(type_url, self.version, self._selected(type_url, key[1]))
            self._selections[key] = selection
        return selection

    def _selected(self, type_url: str, names: frozenset[str] | None) -> dict[str, PackedResource]:
        of_type = self.resources.get(type_url, {})
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


def pack(
    config: ProxyConfig, version: str, *, reuse: Mapping[int, PackedResource] | None = None
) -> PackedConfig:
    """Pack every resource of ``config`` (generated at snapshot ``version``).

    ``reuse`` maps ``id(message)`` to an already packed message (see :func:`pack_all`):
    those messages are not packed again.
    """
    known = reuse or {}
    resources: dict[str, Mapping[str, PackedResource]] = {}
    for type_url in TYPE_URLS:
        packed: dict[str, PackedResource] = {}
        for name, message in config.of_type(type_url).items():
            found = known.get(id(message))
            packed[name] = (
                found
                if found is not None and found.name == name
                else (pack_resource(name, message))
            )
        resources[type_url] = MappingProxyType(packed)
    return PackedConfig(version=version, config=config, resources=MappingProxyType(resources))


def pack_all(messages: Iterable[tuple[str, Message]]) -> Mapping[int, PackedResource]:
    """Pack named messages, keyed by ``id(message)`` for :func:`pack`'s ``reuse``.

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


def _placeholder(type_url: str, name: str) -> PackedResource | None:
    if type_url == ENDPOINT_TYPE:
        return pack_resource(name, endpoint_pb2.ClusterLoadAssignment(cluster_name=name))
    if type_url == ROUTE_TYPE:
        return pack_resource(name, route_pb2.RouteConfiguration(name=name))
    return None
