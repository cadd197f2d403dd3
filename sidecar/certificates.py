"""The workload's certificate: a local key, a CSR to Citadel, rotation, and waiting for it.

:class:`WorkloadCertificates` is a :class:`~shared.lifecycle.Component`. ``start()``
launches one background task and returns at once (Citadel may be down); the task:

1. generates a fresh private key and a CSR for the workload's SPIFFE identity
   (:func:`shared.contracts.ca.csr.new_key_and_csr`; the key never leaves this process
   except to its own Envoy over SDS) and asks the :class:`CertificateSigner` to sign it;
2. publishes the result as a new :class:`WorkloadCertificate` (``version`` + 1);
3. sleeps until the certificate is due — ``rotation_fraction`` of its remaining life when
   received (Citadel backdates ``not_before``), minus up to ``jitter_fraction`` of that
   (drawn once per certificate, so a fleet spreads out).

When signing fails (Citadel unreachable, or a refusal) the current certificate stays
published and the task retries after a back-off that doubles from ``initial_backoff_s``
up to ``max_backoff_s``, each delay drawn from its upper half; it resets after a success.

Once a certificate is published, the signer's trust bundle is polled every
``root_poll_s`` (counted from the last roots received), while waiting for renewal and
while backing off alike: Citadel starts signing with a new root a grace period after
publishing it, and a workload that has not trusted it by then rejects its peers. When
the bundle changes, the new roots are published at once (same key and chain) and the
certificate is renewed. A failed trust-bundle poll is logged and changes nothing.

Readers (the SDS server) call :attr:`WorkloadCertificates.current` and await
:meth:`WorkloadCertificates.wait_for` a version newer than the one they hold. Task
safety: one event loop; published values are immutable. The private key is held in memory
only, never logged (``repr`` hides it). ``stop()`` cancels the task. Errors: the
constructor checks its arguments (``ValueError``); signing errors are logged and kept in
:attr:`WorkloadCertificates.last_error`, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import random
import time
from collections.abc import Callable
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from shared.contracts.ca.client import IssuedCertificate
from shared.contracts.ca.csr import WorkloadKeyType, new_key_and_csr
from shared.contracts.ca.spiffe import SpiffeId

_log = logging.getLogger(__name__)


class CertificateSigner(Protocol):
    """Signs the workload's CSRs (Citadel's client; in the monolith, the CA in-process)."""

    async def create_certificate(self, csr_pem: str, validity_s: int = 0) -> IssuedCertificate:
        """The signed chain and the roots to trust; raise to refuse or when unreachable."""
        ...

    async def trust_bundle(self) -> tuple[str, ...]:
        """The roots workloads must trust now."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class WorkloadCertificate:
    """One published state: key, chain and roots (PEM) and the leaf's validity."""

    version: int
    key_pem: bytes = dataclasses.field(repr=False)
    chain_pem: str
    roots_pem: str
    serial: int
    not_before: datetime.datetime
    not_after: datetime.datetime
    fingerprint: str

    def describe(self) -> dict[str, Any]:
        """Version, serial, fingerprint and validity (JSON-ready; no key)."""
        return {
            "version": self.version,
            "serial": f"{self.serial:x}",
            "fingerprint_sha256": self.fingerprint,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
        }


class WorkloadCertificates:
    """Keeps a valid certificate for ``identity`` published (module docstring)."""

    def __init__(
        self,
        *,
        identity: SpiffeId,
        signer: CertificateSigner,
        key_type: WorkloadKeyType = "ecdsa-p256",
        validity_s: int = 0,
        rotation_fraction: float = 0.5,
        jitter_fraction: float = 0.1,
        root_poll_s: float = 30.0,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``validity_s`` 0 takes Citadel's default lifetime; ``clock`` is Unix time."""
        if not 0 < rotation_fraction < 1 or not 0 <= jitter_fraction < 1:
            raise ValueError("need 0 < rotation_fraction < 1 and 0 <= jitter_fraction < 1")
        if not 0 < initial_backoff_s <= max_backoff_s or root_poll_s <= 0:
            raise ValueError("need 0 < initial_backoff_s <= max_backoff_s and root_poll_s > 0")
        self._identity = identity
        self._signer = signer
        self._key_type: WorkloadKeyType = key_type
        self._validity_s = validity_s
        self._rotation_fraction = rotation_fraction
        self._jitter_fraction = jitter_fraction
        self._root_poll_s = root_poll_s
        self._initial_backoff_s = initial_backoff_s
        self._max_backoff_s = max_backoff_s
        self._clock = clock
        self._random = random.Random()
        self._current: WorkloadCertificate | None = None
        self._due_at = 0.0
        self._poll_at = 0.0
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._last_error: str | None = None
        self._renewals = 0
        self._failures = 0

    @property
    def name(self) -> str:
        """``workload-certificates <spiffe id>``, for logs."""
        return f"workload-certificates {self._identity}"

    @property
    def current(self) -> WorkloadCertificate | None:
        """The published certificate, or None before the first one."""
        return self._current

    @property
    def last_error(self) -> str | None:
        """Why the last signing attempt failed; None after a success."""
        return self._last_error

    async def wait_for(self, after_version: int = 0) -> WorkloadCertificate:
        """Return the current certificate once its version is above ``after_version``."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: self._current is not None and self._current.version > after_version
            )
            assert self._current is not None  # the predicate holds
            return self._current

    def status(self) -> dict[str, Any]:
        """What ``/debug`` shows: identity, the certificate, when it renews, errors."""
        current = self._current
        return {
            "identity": str(self._identity),
            "certificate": current.describe() if current else None,
            "renews_at": _iso(self._due_at) if current else None,
            "renewals": self._renewals,
            "failures": self._failures,
            "last_error": self._last_error,
        }

    async def start(self) -> None:
        """Launch the renewal task and return at once. No-op if it runs."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Cancel the renewal task. Idempotent; safe before start."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        backoff = self._initial_backoff_s
        while True:
            try:
                await self._renew()
            except Exception as exc:  # Citadel down, a refusal, a bad answer: keep the cert
                self._failures += 1
                self._last_error = str(exc)
                delay = self._random.uniform(backoff / 2, backoff)
                _log.warning(
                    "could not renew the certificate of %s (keeping the current one): %s; "
                    "retrying in %.2fs",
                    self._identity,
                    exc,
                    delay,
                )
                await self._sleep_until(self._clock() + delay)
                backoff = min(backoff * 2, self._max_backoff_s)
                continue
            backoff = self._initial_backoff_s
            await self._sleep_until(self._due_at)

    async def _renew(self) -> None:
        key_pem, csr_pem = new_key_and_csr(self._identity, self._key_type)
        issued = await self._signer.create_certificate(csr_pem, self._validity_s)
        leaf = x509.load_pem_x509_certificate(issued.leaf.encode())
        own_key = serialization.load_pem_private_key(key_pem, password=None).public_key()
        if leaf.public_key() != own_key:
            raise ValueError("the signed certificate is not for the key this agent made")
        certificate = WorkloadCertificate(
            version=self._next_version(),
            key_pem=key_pem,
            chain_pem=issued.chain_pem,
            roots_pem=issued.roots_pem,
            serial=leaf.serial_number,
            not_before=leaf.not_valid_before_utc,
            not_after=leaf.not_valid_after_utc,
            fingerprint=leaf.fingerprint(hashes.SHA256()).hex(),
        )
        await self._publish(certificate)
        received = self._clock()  # not not_before: Citadel backdates it for clock skew
        life = certificate.not_after.timestamp() - received
        fraction = self._rotation_fraction * (1 - self._jitter_fraction * self._random.random())
        self._due_at = received + life * fraction
        self._poll_at = received + self._root_poll_s
        self._renewals += 1
        self._last_error = None
        _log.info(
            "certificate %x for %s valid until %s; renewing at %s",
            certificate.serial,
            self._identity,
            certificate.not_after.isoformat(),
            _iso(self._due_at),
        )

    async def _sleep_until(self, deadline: float) -> None:
        """Sleep until ``deadline`` (Unix time), polling the trust bundle when it is due;
        return early once changed roots were published."""
        while (now := self._clock()) < deadline:
            if self._current is not None and now >= self._poll_at:
                self._poll_at = now + self._root_poll_s
                if await self._publish_changed_roots():
                    return
                continue
            wake = deadline if self._current is None else min(deadline, self._poll_at)
            await asyncio.sleep(wake - now)

    async def _publish_changed_roots(self) -> bool:
        """Poll the trust bundle; publish it with the current certificate if it changed."""
        try:
            roots = await self._signer.trust_bundle()
        except Exception as exc:
            _log.debug("trust bundle poll failed (keeping the roots): %s", exc)
            return False
        current = self._current
        roots_pem = "".join(pem if pem.endswith("\n") else pem + "\n" for pem in roots)
        if current is None or not roots or roots_pem == current.roots_pem:
            return False
        _log.info("the mesh's roots changed: publishing them and renewing now")
        await self._publish(
            dataclasses.replace(current, version=self._next_version(), roots_pem=roots_pem)
        )
        return True

    async def _publish(self, certificate: WorkloadCertificate) -> None:
        async with self._changed:
            self._current = certificate
            self._changed.notify_all()

    def _next_version(self) -> int:
        return (self._current.version if self._current else 0) + 1


def _iso(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat()
