"""What one ADS stream subscribed to for one type URL, and what it was sent.

A :class:`Watch` holds the subscription (wildcard, or a set of resource names), the
resource versions the client was sent or reported having (``known``: name → version), the
last response sent (version and nonce), the responses not yet ACKed or NACKed
(``outstanding``: nonce → version, oldest first), the version last ACKed and the last NACK
with Envoy's error text. The state-of-the-world and delta protocol modules drive it.

A NACK does not roll ``known`` back: what was rejected counts as sent, so the same content
is never sent again; only a later change of that content is (Envoy keeps serving its last
good config meanwhile).

Owned by one connection; used from the event loop thread only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Nack:
    """A response Envoy rejected: its version, nonce and Envoy's error message."""

    version: str
    nonce: str
    message: str


@dataclass(frozen=True, slots=True)
class WatchStatus:
    """One watch as the debug views show it. ``names`` is None for a wildcard watch."""

    type_url: str
    names: frozenset[str] | None
    resources: int
    sent_version: str | None
    sent_nonce: str | None
    acked_version: str | None
    pending_nonces: tuple[str, ...]
    nacks: int
    last_nack: Nack | None


@dataclass(slots=True)
class Watch:
    """One type URL's subscription on one stream (see the module docstring)."""

    type_url: str
    wildcard: bool
    names: set[str] = field(default_factory=set)
    known: Mapping[str, str] = field(default_factory=dict)
    must_respond: bool = True
    sent_version: str | None = None
    sent_nonce: str | None = None
    acked_version: str | None = None
    outstanding: dict[str, str] = field(default_factory=dict)
    nacks: int = 0
    last_nack: Nack | None = None

    def interest(self) -> set[str] | None:
        """The names this watch wants, or None when it wants everything of its type."""
        return None if self.wildcard else self.names

    def record_sent(self, version: str, nonce: str, known: Mapping[str, str]) -> None:
        """A response with ``nonce`` at ``version`` left; the client now has ``known``.

        ``known`` is kept, not copied: it must not change afterwards (selections' version
        maps never do).
        """
        self.known = known
        self.sent_version = version
        self.sent_nonce = nonce
        self.outstanding[nonce] = version
        self.must_respond = False

    def forget(self, names: Iterable[str]) -> None:
        """The client no longer has ``names`` (a delta unsubscribe)."""
        gone = self.known.keys() & set(names)
        if gone:
            self.known = {n: v for n, v in self.known.items() if n not in gone}

    def settle(self, nonce: str, error: str | None) -> Nack | str | None:
        """Apply an ACK (``error`` None) or a NACK of ``nonce``.

        Returns the ACKed version, the :class:`Nack`, or None when ``nonce`` is not
        outstanding (already settled, superseded or unknown). Settling a nonce also settles
        every older outstanding one.
        """
        version = self.outstanding.get(nonce)
        if version is None:
            return None
        for pending in list(self.outstanding):
            del self.outstanding[pending]
            if pending == nonce:
                break
        if error is not None:
            self.nacks += 1
            self.last_nack = Nack(version=version, nonce=nonce, message=error)
            return self.last_nack
        self.acked_version = version
        return version

    def status(self) -> WatchStatus:
        """A snapshot of this watch for the debug views."""
        return WatchStatus(
            type_url=self.type_url,
            names=None if self.wildcard else frozenset(self.names),
            resources=len(self.known),
            sent_version=self.sent_version,
            sent_nonce=self.sent_nonce,
            acked_version=self.acked_version,
            pending_nonces=tuple(self.outstanding),
            nacks=self.nacks,
            last_nack=self.last_nack,
        )
