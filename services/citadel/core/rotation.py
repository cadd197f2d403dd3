"""Where the signing root comes from, and how a self-signed root is rotated.

A :class:`RootSource` gives the current :class:`RootView` (what signs, what to trust) and
a JSON-ready status for ``/debug/root``; :meth:`RootSource.tick` advances it in time.

:class:`PluggedRoots` serves operator-provided material and never rotates it.

:class:`SelfSignedRoots` loads its roots from a :class:`~services.citadel.ports.RootStore`
(or generates and saves one) and rotates with an overlap, so no certificate ever stops
verifying::

    idle ──(less than `fraction` of the signing root's validity left)──► next published:
        a new root is generated and trusted everywhere, the old one still signs
    ──(`grace` later: agents have fetched the new bundle)──► previous retiring:
        the new root signs, the old one is still trusted (its leaves live on)
    ──(the old root expires)──► idle

The grace counts only time this process has served the next root: agents cannot fetch
it while Citadel is down, so loading a pending next root publishes it again
(``next_published_at`` becomes the load time) and the grace starts over. So no leaf is
signed by the next root before every agent that polls the trust bundle more often than
once per ``grace`` has had the chance to trust it, however long Citadel was down.

A signing root found expired (Citadel was down for its whole rotation window) is replaced
at once, promoting a published next root if there is one. Every change is saved before it
is served. Task safety: one owner (the event loop) calls ``tick`` and reads ``current``;
views are immutable, so a reader holding one is never affected by a tick. Errors:
:class:`~services.citadel.core.errors.CaConfigError` from the store propagates.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, replace
from typing import Any, Protocol

from cryptography import x509

from services.citadel.core.material import (
    KeyPair,
    RootSet,
    SigningMaterial,
    describe,
    fingerprint,
    generate_root,
    pem,
)
from services.citadel.ports import RootStore

IDLE = "idle"
NEXT_PUBLISHED = "next-root-published"
PREVIOUS_RETIRING = "previous-root-retiring"


@dataclass(frozen=True, slots=True)
class RootView:
    """One consistent state: the signing material and the roots to trust, also as PEM."""

    material: SigningMaterial
    trusted: tuple[x509.Certificate, ...]
    issuers_pem: tuple[str, ...]
    trusted_pem: tuple[str, ...]

    @classmethod
    def of(cls, material: SigningMaterial, trusted: tuple[x509.Certificate, ...]) -> RootView:
        """Build a view, rendering the PEM once."""
        return cls(
            material=material,
            trusted=trusted,
            issuers_pem=tuple(pem(cert) for cert in material.issuers),
            trusted_pem=tuple(pem(cert) for cert in trusted),
        )


class RootSource(Protocol):
    """What the CA signs with now."""

    @property
    def current(self) -> RootView:
        """The current view (immutable)."""
        ...

    def tick(self, now: datetime.datetime) -> list[str]:
        """Advance to ``now``; return what changed (event names, empty if nothing)."""
        ...

    def status(self, now: datetime.datetime) -> dict[str, Any]:
        """Root subject, fingerprint, validity and rotation state (JSON-ready)."""
        ...


class PluggedRoots:
    """Operator-provided CA material, served as is (rotating it is the operator's job)."""

    def __init__(self, material: SigningMaterial) -> None:
        self._view = RootView.of(material, (material.root,))

    @property
    def current(self) -> RootView:
        """The plugged-in material; never changes."""
        return self._view

    def tick(self, now: datetime.datetime) -> list[str]:
        """Nothing to do: plugged-in roots are not rotated."""
        return []

    def status(self, now: datetime.datetime) -> dict[str, Any]:
        """The plugged-in root and signer; rotation is never in progress."""
        material = self._view.material
        return {
            "mode": "plugged",
            "root": describe(material.root),
            "signer": describe(material.signer.cert),
            "rotation": {"in_progress": False, "phase": IDLE, "due_at": None},
            "trusted_roots": [fingerprint(cert) for cert in self._view.trusted],
        }


class SelfSignedRoots:
    """A self-signed root kept in a store and rotated with overlap (module docstring)."""

    def __init__(
        self,
        *,
        store: RootStore,
        key_type: str,
        trust_domain: str,
        root_ttl: datetime.timedelta,
        rotation_fraction: float,
        rotation_grace: datetime.timedelta,
    ) -> None:
        self._store = store
        self._key_type = key_type
        self._trust_domain = trust_domain
        self._ttl = root_ttl
        self._fraction = rotation_fraction
        self._grace = rotation_grace
        self._roots: RootSet | None = None
        self._view: RootView | None = None

    @property
    def current(self) -> RootView:
        """The current view; only after :meth:`load_or_create`."""
        if self._view is None:
            raise RuntimeError("roots are not loaded yet")
        return self._view

    def load_or_create(self, now: datetime.datetime) -> list[str]:
        """Load the stored roots (or make and save the first one), then :meth:`tick`.

        A pending next root is published again at ``now`` (its grace starts over).
        """
        roots = self._store.load()
        events = ["root_loaded"]
        if roots is None:
            roots = RootSet(signing=self._new_root(now))
            self._store.save(roots)
            events = ["root_created"]
        elif roots.next is not None:  # the grace starts over (module docstring)
            roots = replace(roots, next_published_at=now)
            self._store.save(roots)
            events.append("next_root_republished")
        self._set(roots)
        return events + self.tick(now)

    def tick(self, now: datetime.datetime) -> list[str]:
        """Advance the rotation state machine to ``now``; save before serving a change."""
        roots, events = self._advance(self._loaded(), now)
        if events:
            self._store.save(roots)
            self._set(roots)
        return events

    def status(self, now: datetime.datetime) -> dict[str, Any]:
        """The signing root, rotation phase and timing, and the trusted fingerprints."""
        roots = self._loaded()
        phase = IDLE
        if roots.next is not None:
            phase = NEXT_PUBLISHED
        elif roots.previous is not None:
            phase = PREVIOUS_RETIRING
        signs_from = roots.next_published_at + self._grace if roots.next_published_at else None
        return {
            "mode": "self-signed",
            "root": describe(roots.signing.cert),
            "rotation": {
                "in_progress": phase != IDLE,
                "phase": phase,
                "due_at": self._due(roots.signing.cert).isoformat(),
                "next_root": describe(roots.next.cert) if roots.next else None,
                "next_root_signs_from": signs_from.isoformat() if signs_from else None,
                "previous_root": describe(roots.previous) if roots.previous else None,
            },
            "trusted_roots": [fingerprint(cert) for cert in roots.trusted()],
        }

    def _advance(self, roots: RootSet, now: datetime.datetime) -> tuple[RootSet, list[str]]:
        events: list[str] = []
        if roots.previous is not None and now >= roots.previous.not_valid_after_utc:
            roots = replace(roots, previous=None)
            events.append("previous_root_dropped")
        if now >= roots.signing.cert.not_valid_after_utc:
            fresh = roots.next or self._new_root(now)
            roots = RootSet(signing=fresh)
            events.append("expired_root_replaced")
        if roots.next is not None and roots.next_published_at is not None:
            if now >= roots.next_published_at + self._grace:
                roots = RootSet(signing=roots.next, previous=roots.signing.cert)
                events.append("next_root_signing")
        elif now >= self._due(roots.signing.cert):
            roots = replace(roots, next=self._new_root(now), next_published_at=now)
            events.append("next_root_published")
        return roots, events

    def _due(self, cert: x509.Certificate) -> datetime.datetime:
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        return start + (end - start) * (1 - self._fraction)

    def _new_root(self, now: datetime.datetime) -> KeyPair:
        return generate_root(
            key_type=self._key_type, ttl=self._ttl, trust_domain=self._trust_domain, now=now
        )

    def _loaded(self) -> RootSet:
        if self._roots is None:
            raise RuntimeError("roots are not loaded yet")
        return self._roots

    def _set(self, roots: RootSet) -> None:
        self._roots = roots
        self._view = RootView.of(SigningMaterial.self_signed(roots.signing), roots.trusted())
