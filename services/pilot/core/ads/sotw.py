"""State-of-the-world ADS (``StreamAggregatedResources``) on top of :class:`Connection`.

Requests, per type URL:

- The first request of a type (or any request with no ``response_nonce``) subscribes:
  ``resource_names`` (empty for CDS/LDS, or ``*``, means everything of the type) and gets
  a response even if it would be empty. A ``version_info`` on it (Envoy resuming after a
  reconnect) is only logged: Envoy's config is brought up to date by that response.
- A request whose nonce is not the last one sent for its type is stale and ignored (Envoy
  repeats its current subscription with the newer nonce).
- With the current nonce: ``error_detail`` set is a NACK (recorded, logged, counted; the
  rejected content is not sent again), otherwise an ACK of ``version_info``. Changed
  ``resource_names`` on it (EDS after CDS, RDS after LDS) get a response.

A response carries every resource the watch sees, ``version_info`` = the snapshot version
and a fresh nonce; except EDS responses to unchanged names, which are incremental (SotW EDS
is: Envoy keeps the assignments a response leaves out): they carry the assignments that
changed and those of clusters whose CDS content changed in the same round (Envoy warms a
changed cluster until its assignment arrives), so an endpoint-only push sends only what
moved, and a push that changes routes sends no assignment at all.
A full push sends every watched type at the new version (as Istio does,
so every type's ACKed version tells whether the proxy is current), except that content
Envoy rejected is never sent again: a type whose last response was NACKed is only sent
when its content changes. A response that would repeat the same content at the same
version is not sent.
"""

from __future__ import annotations

import logging

from envoy.service.discovery.v3 import discovery_pb2

from services.pilot.core.ads.connection import WILDCARD_TYPES, Connection, error_text
from services.pilot.core.ads.resources import PackedConfig
from services.pilot.core.ads.selection import EncodedResponse
from services.pilot.core.ads.watch import Watch
from services.pilot.core.model import CLUSTER_TYPE, ENDPOINT_TYPE

_log = logging.getLogger(__name__)


class SotwConnection(Connection[discovery_pb2.DiscoveryRequest]):
    """One state-of-the-world ADS stream."""

    protocol = "sotw"
    _reclustered: frozenset[str] = frozenset()  # clusters whose CDS content changed last

    def handle(self, request: discovery_pb2.DiscoveryRequest) -> None:
        """Apply one ``DiscoveryRequest`` (see the module docstring)."""
        type_url = self._check_type(request.type_url)
        names = set(request.resource_names)
        wildcard = "*" in names or (not names and type_url in WILDCARD_TYPES)
        names.discard("*")
        nonce = request.response_nonce
        watch = self.watches.get(type_url)
        if watch is None:
            if request.version_info:
                _log.debug("proxy %s resumes %s at %s", self.id, type_url, request.version_info)
            self.watches[type_url] = Watch(type_url, wildcard=wildcard, names=names)
            self._mark((type_url,))
            return
        if nonce and nonce != watch.sent_nonce:
            self._stale(type_url, nonce)
            return
        if nonce:
            detail = request.error_detail
            self._settle(
                watch,
                nonce,
                error_text(request.HasField("error_detail"), detail.code, detail.message),
            )
        if (watch.wildcard, watch.names) != (wildcard, names):
            watch.wildcard, watch.names = wildcard, names
            self._mark((type_url,))
        elif not nonce:
            watch.must_respond = True
            self._mark((type_url,))

    def _build(self, watch: Watch, config: PackedConfig) -> EncodedResponse | None:
        selection = config.select(watch.type_url, watch.interest())
        rejected = watch.last_nack is not None and watch.last_nack.nonce == watch.sent_nonce
        if (
            selection.versions == watch.known
            and not watch.must_respond
            and (rejected or watch.sent_version == config.version)
        ):
            return None
        incremental = (
            watch.type_url == ENDPOINT_TYPE
            and watch.sent_nonce is not None
            and not watch.must_respond
            and selection.versions.keys() == watch.known.keys()
        )
        known = watch.known
        nonce = self._hub.next_nonce()
        watch.record_sent(config.version, nonce, selection.versions)
        if watch.type_url == CLUSTER_TYPE:
            self._reclustered = frozenset(r.name for r in selection.changed_since(known))
        if incremental:
            reclustered = self._reclustered if CLUSTER_TYPE in self.built_this_round else None
            return selection.sotw_changes(nonce, known, also=reclustered or frozenset())
        return selection.sotw_response(nonce)
