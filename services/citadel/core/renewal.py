"""Checking a renewal token's proof: the workload's own certificate signed the token.

:func:`certificate_identity` takes a renewal token's JWS header (``alg`` ES256 or RS256,
``x5c``: the workload certificate first, then intermediates), its signing input and
signature, and returns the SPIFFE identity the certificate names once:

- the chain verifies against ``roots`` (every root Citadel trusts now, so a certificate
  from before a root rotation still renews) at ``now``, for client authentication;
- the certificate names exactly one URI, a SPIFFE ID;
- the JWS signature verifies with the certificate's key.

Raises :class:`~services.citadel.core.errors.AuthenticationError` with reason
``malformed_token`` (an unusable header), ``token_certificate_untrusted`` (expired, from
another CA, not for clients) or ``bad_token_signature``. Pure function, safe from any
thread.
"""

from __future__ import annotations

import base64
import binascii
import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from services.citadel.core.errors import AuthenticationError
from shared.contracts.ca.spiffe import SpiffeId

_MAX_CHAIN = 4
_P256_BYTES = 32


def certificate_identity(
    header: Mapping[str, Any],
    signing_input: bytes,
    signature: bytes,
    *,
    roots: Sequence[x509.Certificate],
    now: datetime.datetime,
) -> SpiffeId:
    """The identity proven by a renewal token; see the module docstring."""
    chain = _chain(header.get("x5c"))
    if not roots:
        raise AuthenticationError("token_certificate_untrusted", "no trusted roots")
    verifier = PolicyBuilder().store(Store(list(roots))).time(now).build_client_verifier()
    try:
        verifier.verify(chain[0], chain[1:])
    except VerificationError as exc:
        raise AuthenticationError(
            "token_certificate_untrusted", f"token certificate does not verify: {exc}"
        ) from exc
    identity = _identity(chain[0])
    _verify_signature(header.get("alg"), chain[0], signing_input, signature)
    return identity


def _chain(x5c: object) -> list[x509.Certificate]:
    if not isinstance(x5c, list) or not 1 <= len(x5c) <= _MAX_CHAIN:
        raise AuthenticationError("malformed_token", "renewal token lacks an x5c chain")
    try:
        return [
            x509.load_der_x509_certificate(base64.b64decode(item, validate=True)) for item in x5c
        ]
    except (TypeError, ValueError, binascii.Error) as exc:
        raise AuthenticationError("malformed_token", "x5c holds no certificate") from exc


def _identity(leaf: x509.Certificate) -> SpiffeId:
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = names.get_values_for_type(x509.UniformResourceIdentifier)
        if len(uris) != 1:
            raise ValueError("not exactly one URI")
        return SpiffeId.parse(uris[0])
    except (x509.ExtensionNotFound, ValueError) as exc:
        raise AuthenticationError(
            "token_certificate_untrusted", "token certificate names no single SPIFFE ID"
        ) from exc


def _verify_signature(
    algorithm: object, leaf: x509.Certificate, signing_input: bytes, signature: bytes
) -> None:
    key = leaf.public_key()
    try:
        if algorithm == "ES256" and isinstance(key, ec.EllipticCurvePublicKey):
            if len(signature) != 2 * _P256_BYTES:
                raise InvalidSignature
            r = int.from_bytes(signature[:_P256_BYTES], "big")
            s = int.from_bytes(signature[_P256_BYTES:], "big")
            key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA256()))
        elif algorithm == "RS256" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise AuthenticationError(
                "malformed_token", f"alg {algorithm!r} does not fit the certificate's key"
            )
    except InvalidSignature as exc:
        raise AuthenticationError("bad_token_signature", "token signature is invalid") from exc
