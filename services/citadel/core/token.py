"""Workload identity tokens: single-use JWTs bound to one SPIFFE identity.

Local mode has no Kubernetes to vouch for a workload, so the launcher mints a
**bootstrap token**: a compact JWT (RFC 7519) signed with Ed25519 (``alg: EdDSA``,
RFC 8037). Ed25519 rather than HMAC because Citadel then holds only the *public* key: it
can check tokens but never mint one, and the signing key stays with the launcher. Claims::

    iss "splitmesh"   aud "splitmesh-citadel"   sub "spiffe://<td>/ns/<ns>/sa/<sa>"
    iat, exp (seconds since the epoch)           jti (random, unique per token)

A workload that holds a valid certificate renews with a **renewal token** instead
(``alg`` ES256/RS256, its certificate chain in ``x5c``, ``iss`` = ``sub``; made by
:func:`shared.contracts.ca.tokens.renewal_token`, checked by :mod:`.renewal`), so it
needs the launcher only once.

:func:`mint_token` makes a bootstrap token. :class:`TokenVerifier.verify` accepts a token
once and returns the identity it proves, or raises
:class:`~services.citadel.core.errors.AuthenticationError` with one reason:
``malformed_token``, ``bad_token_signature`` (forged or tampered),
``token_certificate_untrusted`` (a renewal token's certificate is expired or from another
CA), ``token_wrong_binding`` (another audience or trust domain, or a subject its
certificate does not name), ``token_expired``, ``token_not_yet_valid``,
``token_lifetime_too_long`` (``exp - iat`` above the maximum, which bounds the replay
cache) or ``token_replayed`` (its ``jti`` was accepted before). A full replay cache raises
:class:`~services.citadel.core.errors.CaUnavailableError` (``replay_cache_full``).

Replay memory is in-process: a token used before a restart could be used once more after
it, within its (short) lifetime. Task safety: a verifier is used from one thread (the
event loop); minting is a pure function.
"""

from __future__ import annotations

import datetime
import heapq
import json
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.citadel.core.errors import AuthenticationError, CaUnavailableError
from services.citadel.core.renewal import certificate_identity
from shared.contracts.ca.spiffe import SpiffeId
from shared.contracts.ca.tokens import (
    AUDIENCE,
    RENEWAL_ALGORITHMS,
    b64url_decode,
    b64url_encode,
    json_part,
)

ISSUER = "splitmesh"
MAX_TOKEN_BYTES = 8192
_HEADER = {"alg": "EdDSA", "typ": "JWT"}

Roots = Callable[[], Sequence[x509.Certificate]]


def mint_token(
    key: Ed25519PrivateKey,
    identity: SpiffeId,
    *,
    ttl_s: int,
    now: float,
    jti: str | None = None,
) -> str:
    """A bootstrap token proving ``identity`` from ``now`` for ``ttl_s`` s (fresh ``jti``)."""
    if ttl_s <= 0:
        raise ValueError(f"ttl_s must be positive, not {ttl_s}")
    issued = int(now)
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(identity),
        "iat": issued,
        "exp": issued + ttl_s,
        "jti": jti if jti is not None else secrets.token_urlsafe(16),
    }
    signing_input = f"{json_part(_HEADER)}.{json_part(claims)}"
    signature = key.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{b64url_encode(signature)}"


class TokenVerifier:
    """Verifies bootstrap and renewal tokens for one trust domain; remembers used ``jti``s."""

    def __init__(
        self,
        *,
        public_key: Ed25519PublicKey,
        trust_domain: str,
        max_ttl_s: int,
        trusted_roots: Roots | None = None,
        leeway_s: float = 30.0,
        max_remembered: int = 1_000_000,
    ) -> None:
        """``public_key`` checks bootstrap tokens; ``trusted_roots`` (None: renewal tokens
        are refused) the certificates of renewal tokens. ``leeway_s`` tolerates clock skew
        on ``iat`` and ``exp``."""
        self._public_key = public_key
        self._trust_domain = trust_domain
        self._max_ttl_s = max_ttl_s
        self._trusted_roots = trusted_roots
        self._leeway_s = leeway_s
        self._used = _ReplayCache(max_remembered)

    def verify(self, token: str, *, now: float) -> SpiffeId:
        """Accept ``token`` (once) and return its identity; see the module docstring."""
        header, claims, signing_input, signature = _split(token)
        if header == _HEADER:
            identity = self._bootstrap_identity(claims, signing_input, signature)
        elif header.get("alg") in RENEWAL_ALGORITHMS and header.get("typ") == "JWT":
            identity = self._renewal_identity(header, claims, signing_input, signature, now)
        else:
            raise AuthenticationError("malformed_token", "token header is not a known JWT kind")
        if identity.trust_domain != self._trust_domain:
            raise AuthenticationError(
                "token_wrong_binding",
                f"token is bound to trust domain {identity.trust_domain!r}, "
                f"not {self._trust_domain!r}",
            )
        issued, expires, jti = claims["iat"], claims["exp"], claims["jti"]
        if expires - issued > self._max_ttl_s:
            raise AuthenticationError(
                "token_lifetime_too_long",
                f"token lifetime {expires - issued}s exceeds the maximum {self._max_ttl_s}s",
            )
        if now > expires + self._leeway_s:
            raise AuthenticationError("token_expired", "token has expired")
        if now < issued - self._leeway_s:
            raise AuthenticationError("token_not_yet_valid", "token is issued in the future")
        self._used.add(jti, expires + self._leeway_s, now)
        return identity

    def _bootstrap_identity(
        self, claims: dict[str, Any], signing_input: bytes, signature: bytes
    ) -> SpiffeId:
        try:
            self._public_key.verify(signature, signing_input)
        except InvalidSignature as exc:
            raise AuthenticationError("bad_token_signature", "token signature is invalid") from exc
        if claims.get("aud") != AUDIENCE or claims.get("iss") != ISSUER:
            raise AuthenticationError(
                "token_wrong_binding", f"token is not issued by {ISSUER} for {AUDIENCE}"
            )
        return _subject(claims)

    def _renewal_identity(
        self,
        header: dict[str, Any],
        claims: dict[str, Any],
        signing_input: bytes,
        signature: bytes,
        now: float,
    ) -> SpiffeId:
        if self._trusted_roots is None:
            raise AuthenticationError("malformed_token", "renewal tokens are not accepted here")
        proven = certificate_identity(
            header,
            signing_input,
            signature,
            roots=self._trusted_roots(),
            now=datetime.datetime.fromtimestamp(now, datetime.UTC),
        )
        if claims.get("aud") != AUDIENCE or claims.get("iss") != claims["sub"]:
            raise AuthenticationError(
                "token_wrong_binding", f"renewal token is not self-issued for {AUDIENCE}"
            )
        if _subject(claims) != proven:
            raise AuthenticationError(
                "token_wrong_binding", f"token subject is not the certificate's {proven}"
            )
        return proven


def _split(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    if len(token) > MAX_TOKEN_BYTES:
        raise AuthenticationError("malformed_token", "token is too long")
    parts = token.split(".")
    if len(parts) != 3:
        raise AuthenticationError("malformed_token", "token is not a compact JWT")
    header, claims = _decode_json(parts[0]), _decode_json(parts[1])
    if not (
        isinstance(claims.get("sub"), str)
        and isinstance(claims.get("jti"), str)
        and claims["jti"]
        and all(_is_time(claims.get(name)) for name in ("iat", "exp"))
    ):
        raise AuthenticationError("malformed_token", "token lacks sub, jti, iat or exp")
    return header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), _decode(parts[2])


def _subject(claims: dict[str, Any]) -> SpiffeId:
    try:
        return SpiffeId.parse(claims["sub"])
    except ValueError as exc:
        raise AuthenticationError("token_wrong_binding", f"token subject: {exc}") from exc


class _ReplayCache:
    """``jti``s of accepted tokens until they expire; a bounded set."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._forget_at: dict[str, float] = {}
        self._expiries: list[tuple[float, str]] = []

    def add(self, jti: str, forget_at: float, now: float) -> None:
        while self._expiries and self._expiries[0][0] < now:
            self._forget_at.pop(heapq.heappop(self._expiries)[1], None)
        if jti in self._forget_at:
            raise AuthenticationError("token_replayed", "token was already used")
        if len(self._forget_at) >= self._capacity:
            raise CaUnavailableError("replay_cache_full", "too many live tokens; retry later")
        self._forget_at[jti] = forget_at
        heapq.heappush(self._expiries, (forget_at, jti))


def _is_time(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _decode(text: str) -> bytes:
    try:
        return b64url_decode(text)
    except ValueError as exc:
        raise AuthenticationError("malformed_token", "token is not base64url") from exc


def _decode_json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(_decode(text))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AuthenticationError("malformed_token", "token part is not JSON") from exc
    if not isinstance(value, dict):
        raise AuthenticationError("malformed_token", "token part is not a JSON object")
    return value
