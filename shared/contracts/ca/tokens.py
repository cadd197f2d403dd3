"""Identity tokens a workload sends to Citadel, and the agent's token provider.

Citadel accepts two kinds of single-use compact JWTs (each ``jti`` once) as
``authorization: Bearer <token>``:

- a **bootstrap token** (``alg: EdDSA``), minted by the launcher with its Ed25519 key for
  one SPIFFE identity (``services.citadel.core.token.mint_token``; ``splitmesh citadel
  mint-token``): how a workload gets its first certificate;
- a **renewal token** (``alg: ES256`` or ``RS256``), made by the workload itself with the
  private key of its current, still valid certificate, which travels in the JWS ``x5c``
  header (leaf first): Citadel checks the chain against its trusted roots and that the
  certificate names the token's subject. An agent renews on its own, for as long as its
  certificate lives, without asking the launcher again.

Both carry ``aud`` :data:`AUDIENCE`, ``sub`` (the SPIFFE ID), ``iat``, ``exp``, ``jti``.
:func:`renewal_token` makes a renewal token; :class:`RenewingTokens` is the agent's
token provider for :class:`~shared.contracts.ca.client.CertificateClient`: a renewal
token while the current certificate is valid, else the bootstrap provider.

Pure functions apart from randomness (``jti``); :class:`RenewingTokens` holds no state of
its own. Errors: :func:`renewal_token` raises ``ValueError`` for a key or chain it cannot
use (never quoting the key).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

AUDIENCE = "splitmesh-citadel"
RENEWAL_ALGORITHMS = ("ES256", "RS256")
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_P256_BYTES = 32

TokenProvider = Callable[[], Awaitable[str]]
Credentials = tuple[bytes, str]  # (private key PEM, chain PEM)


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url (RFC 7515)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict unpadded base64url; ``ValueError`` for anything else."""
    if not _BASE64URL.match(text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


def json_part(value: dict[str, Any]) -> str:
    """A JWS header or payload: compact JSON, base64url."""
    return b64url_encode(json.dumps(value, separators=(",", ":")).encode())


def renewal_token(key_pem: bytes, chain_pem: str, *, now: float, ttl_s: int = 60) -> str:
    """A renewal token signed with ``key_pem`` for the identity of ``chain_pem``'s leaf."""
    chain = x509.load_pem_x509_certificates(chain_pem.encode())
    leaf = chain[0]
    uris = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    subjects = uris.get_values_for_type(x509.UniformResourceIdentifier)
    if len(subjects) != 1:
        raise ValueError("the certificate does not name exactly one SPIFFE identity")
    key = serialization.load_pem_private_key(key_pem, password=None)
    algorithm = _algorithm(key)
    header = {
        "alg": algorithm,
        "typ": "JWT",
        # x5c is standard base64 of DER (RFC 7515 4.1.6); the root is not sent.
        "x5c": [
            base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
            for cert in chain[:-1] or chain
        ],
    }
    issued = int(now)
    claims = {
        "iss": subjects[0],
        "aud": AUDIENCE,
        "sub": subjects[0],
        "iat": issued,
        "exp": issued + ttl_s,
        "jti": secrets.token_urlsafe(16),
    }
    signing_input = f"{json_part(header)}.{json_part(claims)}".encode("ascii")
    return f"{signing_input.decode()}.{b64url_encode(_sign(key, signing_input))}"


class RenewingTokens:
    """Token provider: a renewal token while the current certificate is valid, else bootstrap.

    ``credentials()`` returns the current (key PEM, chain PEM) or None; a certificate
    expiring within ``margin_s`` is not used (Citadel would see it expired).
    """

    def __init__(
        self,
        *,
        bootstrap: TokenProvider,
        credentials: Callable[[], Credentials | None],
        margin_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._bootstrap = bootstrap
        self._credentials = credentials
        self._margin_s = margin_s
        self._clock = clock

    async def __call__(self) -> str:
        """The token for the next CreateCertificate call."""
        credentials = self._credentials()
        now = self._clock()
        if credentials is not None:
            key_pem, chain_pem = credentials
            leaf = x509.load_pem_x509_certificate(chain_pem.encode())
            if leaf.not_valid_after_utc.timestamp() - self._margin_s > now:
                return renewal_token(key_pem, chain_pem, now=now)
        return await self._bootstrap()


def _algorithm(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    raise ValueError("renewal tokens need an ECDSA P-256 or RSA key")


def _sign(key: Any, data: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(_P256_BYTES, "big") + s.to_bytes(_P256_BYTES, "big")
    signature: bytes = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return signature
