"""The certificate authority's request path: authenticate, check, cap, sign, count.

:class:`CertificateAuthority.create_certificate` serves one ``CreateCertificate``:

1. the ``authorization`` value must be ``Bearer <token>`` and the token must verify
   (:mod:`.token`): it names the caller's SPIFFE identity;
2. the CSR must pass :func:`~.csr.check_csr` for that identity;
3. the lifetime is the requested one (0: the default), capped at the maximum and at the
   signer's own expiry; a negative one is refused (``bad_validity``);
4. the leaf is signed by the current root view, and the chain (leaf first, root last) is
   returned with every root to trust.

Refusals raise the :mod:`.errors` hierarchy; each is counted by reason
(``citadel.requests.rejected``) and logged with the reason, the caller's identity when
known and its peer address — never the token, the CSR or a key. Successes are counted
(``citadel.certs.issued``, by key type), timed (``citadel.signing.latency``, the whole
request path) and logged with identity, serial and expiry. Metrics go to the meter
``splitmesh.citadel`` unless one is given.

Task safety: synchronous and CPU-bound (about a millisecond); call it from one thread
(the event loop). The root source and the token verifier are owned by the caller.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from opentelemetry import metrics

from services.citadel.core.csr import check_csr
from services.citadel.core.errors import AuthenticationError, CitadelError, InvalidRequestError
from services.citadel.core.issuer import issue_leaf
from services.citadel.core.material import pem
from services.citadel.core.rotation import RootSource
from services.citadel.core.token import TokenVerifier
from shared.contracts.ca.spiffe import SpiffeId

_log = logging.getLogger(__name__)
_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)


@dataclass(frozen=True, slots=True)
class IssuedChain:
    """PEM certificates, leaf first and root last, and the roots to trust (PEM)."""

    chain: tuple[str, ...]
    trusted_roots: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Lifetimes:
    """Workload certificate lifetimes: the default and the cap."""

    default: datetime.timedelta
    maximum: datetime.timedelta


class CertificateAuthority:
    """Issues workload certificates to callers for their own identity only."""

    def __init__(
        self,
        *,
        roots: RootSource,
        verifier: TokenVerifier,
        lifetimes: Lifetimes,
        allowed_key_types: Collection[str],
        max_csr_bytes: int,
        clock: Callable[[], float] = time.time,
        meter: metrics.Meter | None = None,
    ) -> None:
        """``clock`` returns seconds since the epoch (tests move it)."""
        self._roots = roots
        self._verifier = verifier
        self._lifetimes = lifetimes
        self._allowed = frozenset(allowed_key_types)
        self._max_csr_bytes = max_csr_bytes
        self._clock = clock
        meter = meter if meter is not None else metrics.get_meter("splitmesh.citadel")
        self._issued = meter.create_counter(
            "citadel.certs.issued", unit="{certificate}", description="Certificates issued"
        )
        self._rejected = meter.create_counter(
            "citadel.requests.rejected",
            unit="{request}",
            description="Certificate requests refused, by reason",
        )
        self._latency = meter.create_histogram(
            "citadel.signing.latency",
            unit="s",
            description="Time to authenticate, check and sign one certificate request",
            explicit_bucket_boundaries_advisory=_LATENCY_BUCKETS,
        )

    def trusted_roots(self) -> tuple[str, ...]:
        """Every root workloads must trust now (PEM, the signing root first)."""
        return self._roots.current.trusted_pem

    def create_certificate(
        self, *, authorization: str | None, csr_pem: str, validity_s: int, peer: str = ""
    ) -> IssuedChain:
        """Serve one request (module docstring); raise a ``CitadelError`` to refuse it."""
        started = time.perf_counter()
        caller: SpiffeId | None = None
        try:
            caller = self._authenticate(authorization)
            issued = self._issue(caller, csr_pem, validity_s)
        except CitadelError as exc:
            self._rejected.add(1, {"reason": exc.reason})
            _log.warning(
                "refused certificate request from %s (%s): %s",
                caller or "unauthenticated caller",
                peer or "unknown peer",
                exc,
                extra={"reason": exc.reason, "identity": str(caller or ""), "peer": peer},
            )
            raise
        self._latency.record(time.perf_counter() - started)
        return issued

    def _authenticate(self, authorization: str | None) -> SpiffeId:
        if not authorization:
            raise AuthenticationError("missing_token", "no authorization: Bearer token sent")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("malformed_token", "authorization is not 'Bearer <token>'")
        return self._verifier.verify(token.strip(), now=self._clock())

    def _issue(self, caller: SpiffeId, csr_pem: str, validity_s: int) -> IssuedChain:
        checked = check_csr(
            csr_pem, caller=caller, allowed_key_types=self._allowed, max_bytes=self._max_csr_bytes
        )
        if validity_s < 0:
            raise InvalidRequestError("bad_validity", f"validity {validity_s}s is negative")
        lifetime = self._lifetimes.default
        if validity_s:
            lifetime = min(datetime.timedelta(seconds=validity_s), self._lifetimes.maximum)
        view = self._roots.current
        now = datetime.datetime.fromtimestamp(self._clock(), datetime.UTC)
        leaf = issue_leaf(
            view.material,
            public_key=checked.public_key,
            identity=caller,
            lifetime=lifetime,
            now=now,
        )
        self._issued.add(1, {"key_type": checked.key_type})
        _log.info(
            "issued certificate for %s, serial %x, expires %s",
            caller,
            leaf.serial_number,
            leaf.not_valid_after_utc.isoformat(),
            extra={"identity": str(caller), "key_type": checked.key_type},
        )
        return IssuedChain(chain=(pem(leaf), *view.issuers_pem), trusted_roots=view.trusted_pem)
