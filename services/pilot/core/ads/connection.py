"""One ADS stream's state and the push loop shared by the SotW and delta protocols.

A :class:`Connection` belongs to one stream of one proxy. The adapter feeds it the stream's
requests (:meth:`Connection.handle`, implemented per protocol in :mod:`.sotw` and
:mod:`.delta`) and awaits :meth:`Connection.next_response` for what to send. Work is kept
as a set of type URLs to reconsider, not as a queue of messages: a request that changes a
subscription marks its type, a server push marks every watched type (full push) or only
EDS (endpoint push). When the stream asks for its next response, the connection takes the
newest mesh snapshot, fetches this proxy's config from the server's generation cache, and
builds a response for each marked type, in CDS, EDS, LDS, RDS order, that has something
new (the protocol decides what is new). A slow stream therefore never piles up responses:
marks coalesce until it is ready, and then it gets the newest config.

Nothing is sent before the server holds a snapshot (Pilot has synced from Galley). When
generation fails, the connection keeps serving the last config it generated (and reports
the error in its status); its stream stays open.

Task safety: one task calls :meth:`next_response`; :meth:`handle`, :meth:`push` and
:meth:`close` are called from other tasks of the same event loop. Cancellation of
:meth:`next_response` leaves the marks in place for the next call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, Generic, Protocol, TypeVar

from google.protobuf.message import Message

from services.pilot.core.ads.errors import ConnectionClosedError, UnknownTypeError
from services.pilot.core.ads.metrics import AdsMetrics, short_type
from services.pilot.core.ads.resources import PackedConfig
from services.pilot.core.ads.selection import EncodedResponse
from services.pilot.core.ads.watch import Nack, Watch, WatchStatus
from services.pilot.core.model import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    TYPE_URLS,
    Proxy,
)
from services.pilot.core.snapshot import MeshSnapshot

_log = logging.getLogger(__name__)

WILDCARD_TYPES = frozenset({CLUSTER_TYPE, LISTENER_TYPE})
"""Types whose first request with no names subscribes to everything (as Envoy's CDS/LDS)."""


class Hub(Protocol):
    """What a connection needs from its server."""

    @property
    def snapshot(self) -> MeshSnapshot | None:
        """The newest released snapshot (None until Pilot has synced)."""
        ...

    @property
    def metrics(self) -> AdsMetrics:
        """The server's instruments."""
        ...

    def next_nonce(self) -> str:
        """A nonce no response of this server used before."""
        ...

    async def config_for(self, snapshot: MeshSnapshot, proxy: Proxy) -> PackedConfig:
        """``proxy``'s packed config at ``snapshot`` (from the generation cache)."""
        ...


@dataclass(frozen=True, slots=True)
class ConnectionStatus:
    """One stream as the debug views show it; ``watches`` is keyed by short type name."""

    id: str
    proxy_id: str
    protocol: str
    peer: str
    connected_at: float
    version: str | None
    in_sync: bool
    generation_error: str | None
    watches: dict[str, WatchStatus]


RequestT = TypeVar("RequestT", bound=Message)


class Connection(ABC, Generic[RequestT]):
    """One ADS stream (see the module docstring). Subclasses implement one protocol."""

    protocol: ClassVar[str]

    def __init__(self, *, conn_id: str, proxy: Proxy, peer: str, hub: Hub) -> None:
        self.id = conn_id
        self.proxy = proxy
        self.peer = peer
        self.connected_at = time.time()
        self.watches: dict[str, Watch] = {}
        self._hub = hub
        self._pending: set[str] = set()
        self._outbox: deque[EncodedResponse] = deque()
        self._wake = asyncio.Event()
        self._closed = False
        self._version: str | None = None
        self._last_config: PackedConfig | None = None
        self._generation_error: str | None = None
        self._push_started: float | None = None
        self._push_sent = False
        self.built_this_round: set[str] = set()
        """Types already answered in the round of responses being built (CDS first)."""

    @abstractmethod
    def handle(self, request: RequestT) -> None:
        """Apply one request of the stream; raise :class:`StreamRequestError` to end it."""

    @abstractmethod
    def _build(self, watch: Watch, config: PackedConfig) -> EncodedResponse | None:
        """The response bringing ``watch`` up to ``config``, or None if nothing is new."""

    def push(self, *, full: bool, started: float) -> None:
        """A server push released at ``started`` (monotonic): every watched type, or EDS."""
        types = set(self.watches) if full else set(self.watches) & {ENDPOINT_TYPE}
        if not types:
            return
        if self._push_started is None:
            self._push_started = started
        self._mark(types)

    def close(self) -> None:
        """End the connection: a pending or later :meth:`next_response` raises. Idempotent."""
        self._closed = True
        self._wake.set()

    async def next_response(self) -> EncodedResponse:
        """The next response to send; waits until there is one.

        Raises :class:`ConnectionClosedError` once the connection is closed.
        """
        while not self._outbox:
            if self._closed:
                raise ConnectionClosedError(self.id)
            await self._wake.wait()
            self._wake.clear()
            snapshot = self._hub.snapshot
            if self._closed or not self._pending or snapshot is None:
                continue
            types, self._pending = self._pending, set()
            try:
                config = await self._config(snapshot)
            except asyncio.CancelledError:
                self._pending |= types
                raise
            if config is None or self._closed:
                continue
            self._version = config.version
            self.built_this_round = set()
            for type_url in TYPE_URLS:
                watch = self.watches.get(type_url)
                if type_url not in types or watch is None:
                    continue
                response = self._build(watch, config)
                if response is not None:
                    self.built_this_round.add(type_url)
                    self._outbox.append(response)
                    self._push_sent = True
                    self._hub.metrics.pushes.add(
                        1, {"type": short_type(type_url), "protocol": self.protocol}
                    )
            self._check_converged()
        return self._outbox.popleft()

    def in_sync(self) -> bool:
        """Every push answered, and the last response of each type ACKed (not NACKed)."""
        return self._answered() and all(
            watch.last_nack is None or watch.last_nack.nonce != watch.sent_nonce
            for watch in self.watches.values()
        )

    def status(self) -> ConnectionStatus:
        """A snapshot of this connection for the debug views."""
        return ConnectionStatus(
            id=self.id,
            proxy_id=self.proxy.id,
            protocol=self.protocol,
            peer=self.peer,
            connected_at=self.connected_at,
            version=self._version,
            in_sync=self.in_sync(),
            generation_error=self._generation_error,
            watches={
                short_type(type_url): self.watches[type_url].status()
                for type_url in TYPE_URLS
                if type_url in self.watches
            },
        )

    def _check_type(self, type_url: str) -> str:
        if type_url not in TYPE_URLS:
            raise UnknownTypeError(
                f"type URL {type_url!r} is not served; Pilot serves {', '.join(TYPE_URLS)}"
            )
        return type_url

    def _mark(self, types: Iterable[str]) -> None:
        self._pending.update(types)
        self._wake.set()

    def _settle(self, watch: Watch, nonce: str, error: str | None) -> bool:
        """Apply an ACK/NACK of ``nonce``; False when the nonce was not outstanding."""
        result = watch.settle(nonce, error)
        if result is None:
            return False
        if isinstance(result, Nack):
            _log.warning(
                "proxy %s rejected %s version %s (nonce %s): %s",
                self.proxy.id,
                short_type(watch.type_url),
                result.version,
                result.nonce,
                result.message,
            )
            self._hub.metrics.nacks.add(1, {"type": short_type(watch.type_url)})
        self._check_converged()
        return True

    def _stale(self, type_url: str, nonce: str) -> None:
        _log.debug("proxy %s: ignoring %s request with stale nonce %s", self.id, type_url, nonce)
        self._hub.metrics.stale_nonces.add(1, {"type": short_type(type_url)})

    async def _config(self, snapshot: MeshSnapshot) -> PackedConfig | None:
        """This proxy's config at ``snapshot``; on failure the last good one (or None)."""
        try:
            config = await self._hub.config_for(snapshot, self.proxy)
        except Exception as exc:
            self._generation_error = f"version {snapshot.version}: {type(exc).__name__}: {exc}"
            _log.debug("proxy %s keeps its last config: %s", self.id, self._generation_error)
            return self._last_config
        self._generation_error = None
        self._last_config = config
        return config

    def _answered(self) -> bool:
        """Nothing left to send and every response sent was ACKed or NACKed."""
        if self._pending or self._outbox:
            return False
        return all(not watch.outstanding for watch in self.watches.values())

    def _check_converged(self) -> None:
        if self._push_started is None or not self._answered():
            return
        if self._push_sent:
            self._hub.metrics.convergence.record(time.monotonic() - self._push_started)
        self._push_started = None
        self._push_sent = False


def error_text(has_error: bool, code: int, message: str) -> str | None:
    """Envoy's ``error_detail`` as a message (None when the request is no NACK)."""
    if not has_error:
        return None
    return message or f"rejected with status code {code} and no message"
