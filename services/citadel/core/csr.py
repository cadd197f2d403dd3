"""Checking a workload's CSR: what it must be before Citadel signs its public key.

:func:`check_csr` accepts exactly: one PEM ``CERTIFICATE REQUEST`` of at most
``max_bytes``, whose self-signature is valid (proof the caller holds the key), whose key
type is allowed, and whose subject alternative names are exactly one URI equal to the
caller's SPIFFE identity. Only the public key is taken from the CSR; its subject and any
other requested extension are ignored (Citadel decides what the certificate says).

Raises (reasons in brackets):
:class:`~services.citadel.core.errors.InvalidRequestError` — [oversized],
[malformed_csr], [bad_csr_signature], [key_type_not_allowed], [no_spiffe_id];
:class:`~services.citadel.core.errors.PermissionDeniedError` — [identity_mismatch] (a
URI SAN for another identity), [extra_sans] (the caller's identity plus anything else).
Pure function, safe from any thread.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from services.citadel.core.errors import InvalidRequestError, PermissionDeniedError
from shared.contracts.ca.spiffe import SpiffeId

WorkloadPublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
_PEM_BEGIN = "-----BEGIN CERTIFICATE REQUEST-----"
_CURVES = {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384", "secp521r1": "ecdsa-p521"}


@dataclass(frozen=True, slots=True)
class CheckedCsr:
    """A CSR that passed every check: the key to certify and its type label."""

    public_key: WorkloadPublicKey
    key_type: str


def key_type_of(public_key: object) -> str:
    """``ecdsa-p256``, ``rsa-2048``, ...; ``ed25519`` and others by their algorithm name."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return _CURVES.get(public_key.curve.name, f"ecdsa-{public_key.curve.name}")
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"rsa-{public_key.key_size}"
    return type(public_key).__name__.removesuffix("PublicKey").lower() or "unknown"


def check_csr(
    csr_pem: str,
    *,
    caller: SpiffeId,
    allowed_key_types: Collection[str],
    max_bytes: int,
) -> CheckedCsr:
    """Check ``csr_pem`` for ``caller``; see the module docstring for what is accepted."""
    if len(csr_pem) > max_bytes:
        raise InvalidRequestError(
            "oversized", f"CSR is {len(csr_pem)} bytes; the limit is {max_bytes}"
        )
    if csr_pem.count(_PEM_BEGIN) != 1:
        raise InvalidRequestError("malformed_csr", "expected exactly one PEM CERTIFICATE REQUEST")
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        signature_valid = csr.is_signature_valid
        public_key = csr.public_key()
        sans = _subject_alternative_names(csr)
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise InvalidRequestError("malformed_csr", f"CSR does not parse: {exc}") from exc
    if not signature_valid:
        raise InvalidRequestError("bad_csr_signature", "CSR signature does not verify")
    key_type = key_type_of(public_key)
    if key_type not in allowed_key_types or not isinstance(public_key, WorkloadPublicKey):
        raise InvalidRequestError(
            "key_type_not_allowed",
            f"key type {key_type} is not allowed; use one of {sorted(allowed_key_types)}",
        )
    _check_names(sans, caller)
    return CheckedCsr(public_key=public_key, key_type=key_type)


def _subject_alternative_names(csr: x509.CertificateSigningRequest) -> list[x509.GeneralName]:
    try:
        extension = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(extension.value)


def _check_names(sans: list[x509.GeneralName], caller: SpiffeId) -> None:
    uris = [name.value for name in sans if isinstance(name, x509.UniformResourceIdentifier)]
    if not uris:
        raise InvalidRequestError(
            "no_spiffe_id", f"CSR has no URI subject alternative name; expected {caller}"
        )
    others = [uri for uri in uris if uri != str(caller)]
    if others:
        raise PermissionDeniedError(
            "identity_mismatch",
            f"caller {caller} may not request a certificate for {others[0][:300]}",
        )
    if len(sans) != 1:
        raise PermissionDeniedError(
            "extra_sans",
            f"CSR must name only {caller}; it has {len(sans)} subject alternative names",
        )
