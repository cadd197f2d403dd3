"""Delta (incremental) ADS (``DeltaAggregatedResources``) on top of :class:`Connection`.

Requests, per type URL:

- The first request of a type creates the watch: ``initial_resource_versions`` says what
  the client already has (after a reconnect), so only differences are sent. For CDS/LDS an
  empty ``resource_names_subscribe`` on it means everything of the type; ``*`` subscribes
  to everything on any request, and unsubscribing ``*`` ends that. It always gets a
  response, even an empty one.
- ``resource_names_subscribe`` / ``resource_names_unsubscribe`` change the subscription on
  every request, whatever its nonce, and get a response when something is new.
- A ``response_nonce`` that is outstanding settles that response (and older ones): with
  ``error_detail`` a NACK (recorded, logged, counted; the rejected content is not sent
  again), otherwise an ACK. Any other nonce is stale and only counted.

A response carries only the resources whose content version differs from what the client
has, ``removed_resources`` for what it has but no longer sees, ``system_version_info`` =
the snapshot version and a fresh nonce. Several responses may be outstanding.
"""

from __future__ import annotations

from envoy.service.discovery.v3 import discovery_pb2

from services.pilot.core.ads.connection import WILDCARD_TYPES, Connection, error_text
from services.pilot.core.ads.resources import PackedConfig
from services.pilot.core.ads.selection import EncodedResponse
from services.pilot.core.ads.watch import Watch


class DeltaConnection(Connection[discovery_pb2.DeltaDiscoveryRequest]):
    """One delta ADS stream."""

    protocol = "delta"

    def handle(self, request: discovery_pb2.DeltaDiscoveryRequest) -> None:
        """Apply one ``DeltaDiscoveryRequest`` (see the module docstring)."""
        type_url = self._check_type(request.type_url)
        subscribe = list(request.resource_names_subscribe)
        unsubscribe = list(request.resource_names_unsubscribe)
        watch = self.watches.get(type_url)
        changed = bool(subscribe or unsubscribe)
        if watch is None:
            watch = Watch(
                type_url,
                wildcard=not subscribe and type_url in WILDCARD_TYPES,
                known=dict(request.initial_resource_versions),
            )
            self.watches[type_url] = watch
            changed = True
        for name in subscribe:
            if name == "*":
                watch.wildcard = True
            else:
                watch.names.add(name)
        for name in unsubscribe:
            if name == "*":
                watch.wildcard = False
            else:
                watch.names.discard(name)
        watch.forget(name for name in unsubscribe if name != "*")
        nonce = request.response_nonce
        if nonce:
            detail = request.error_detail
            error = error_text(request.HasField("error_detail"), detail.code, detail.message)
            if not self._settle(watch, nonce, error):
                self._stale(type_url, nonce)
        if changed:
            self._mark((type_url,))

    def _build(self, watch: Watch, config: PackedConfig) -> EncodedResponse | None:
        selection = config.select(watch.type_url, watch.interest())
        if not watch.must_respond and selection.versions == watch.known:
            return None  # the common case of a push: this type did not change (one C compare)
        removed = sorted(watch.known.keys() - selection.resources.keys())
        if not removed and not watch.must_respond and not selection.changed_since(watch.known):
            return None
        known = watch.known
        nonce = self._hub.next_nonce()
        watch.record_sent(config.version, nonce, selection.versions)
        return selection.delta_response(nonce, known, removed)
