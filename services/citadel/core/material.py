"""CA key material: roots, their generation, and what a signature needs.

- :class:`KeyPair` is a CA certificate and its private key.
- :class:`SigningMaterial` is what signs leaves: the signer's key pair and the
  certificates that follow a leaf in its chain (the signer, any intermediates, the root
  last). :meth:`SigningMaterial.checked` validates plugged-in CA files: the key matches
  the certificate, each certificate is signed by the next, the root is self-signed and
  every CA certificate may sign certificates.
- :class:`RootSet` is the self-signed CA's state: the signing root, a published next
  root (trusted, not yet signing) and the previous root (trusted until it expires).
- :func:`generate_root` makes a self-signed root (ECDSA P-256 or RSA 2048), valid from
  :func:`backdate` before ``now`` (clock skew between workloads) for ``ttl``.

Immutable values and pure functions (apart from key generation's randomness); safe from
any thread. Errors: :class:`~services.citadel.core.errors.CaConfigError` for unusable
material, ``ValueError`` for an unknown key type.
"""

from __future__ import annotations

import datetime
import itertools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from services.citadel.core.errors import CaConfigError

CaPrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
_MAX_BACKDATE = datetime.timedelta(minutes=5)
_ORGANIZATION = "splitmesh"


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A CA certificate and its private key (never logged, never sent)."""

    cert: x509.Certificate
    key: CaPrivateKey

    def __repr__(self) -> str:
        return f"KeyPair({fingerprint(self.cert)[:16]}…, key=<hidden>)"


@dataclass(frozen=True, slots=True)
class RootSet:
    """The self-signed CA's roots.

    ``next_published_at`` (when the running Citadel began serving ``next``) is set exactly
    when ``next`` is.
    """

    signing: KeyPair
    next: KeyPair | None = None
    next_published_at: datetime.datetime | None = None
    previous: x509.Certificate | None = None

    def __post_init__(self) -> None:
        if (self.next is None) != (self.next_published_at is None):
            raise ValueError("next and next_published_at go together")

    def trusted(self) -> tuple[x509.Certificate, ...]:
        """Every root to trust: the signing root first, then next, then previous."""
        others = (self.next.cert if self.next else None, self.previous)
        return (self.signing.cert, *(cert for cert in others if cert is not None))


@dataclass(frozen=True, slots=True)
class SigningMaterial:
    """The signer and the chain that follows each leaf (``issuers``: signer … root)."""

    signer: KeyPair
    issuers: tuple[x509.Certificate, ...]

    @property
    def root(self) -> x509.Certificate:
        """The trust anchor at the end of the chain."""
        return self.issuers[-1]

    @classmethod
    def self_signed(cls, root: KeyPair) -> SigningMaterial:
        """A self-signed root signs directly: the chain after a leaf is the root alone."""
        return cls(signer=root, issuers=(root.cert,))

    @classmethod
    def checked(
        cls,
        *,
        cert: x509.Certificate,
        key: object,
        chain: Sequence[x509.Certificate],
        root: x509.Certificate,
    ) -> SigningMaterial:
        """Validate plugged-in CA material (Istio's cacerts) and build the signer's chain.

        ``chain`` may repeat ``cert`` and ``root`` (Istio's cert-chain.pem often does).
        """
        if not isinstance(key, CaPrivateKey):
            raise CaConfigError("ca_key", "the CA key must be an ECDSA or RSA private key")
        if key.public_key().public_numbers() != _public_numbers(cert):
            raise CaConfigError("ca_key", "the CA key does not match the CA certificate")
        seen = {fingerprint(cert), fingerprint(root)}
        middle = []
        for link in chain:
            if fingerprint(link) not in seen:
                seen.add(fingerprint(link))
                middle.append(link)
        issuers = (cert, *middle, root) if fingerprint(cert) != fingerprint(root) else (root,)
        for child, parent in itertools.pairwise(issuers):
            _require_signed_by(child, parent)
        _require_signed_by(root, root)
        for ca in issuers:
            _require_ca(ca)
        return cls(signer=KeyPair(cert, key), issuers=issuers)


def backdate(ttl: datetime.timedelta) -> datetime.timedelta:
    """How far before ``now`` a certificate of lifetime ``ttl`` starts: 5 min, or ttl/10."""
    return min(_MAX_BACKDATE, ttl / 10)


def generate_root(
    *, key_type: str, ttl: datetime.timedelta, trust_domain: str, now: datetime.datetime
) -> KeyPair:
    """A fresh self-signed root CA; its subject names the trust domain and a random id."""
    key: CaPrivateKey
    if key_type == "ecdsa-p256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif key_type == "rsa-2048":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        raise ValueError(f"unknown CA key type {key_type!r}")
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANIZATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, trust_domain[:64]),
            x509.NameAttribute(NameOID.COMMON_NAME, f"splitmesh root CA {secrets.token_hex(4)}"),
        ]
    )
    public_key = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - backdate(ttl))
        .not_valid_after(now + ttl)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert, key)


def fingerprint(cert: x509.Certificate) -> str:
    """The certificate's SHA-256 fingerprint, lower-case hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


def describe(cert: x509.Certificate) -> dict[str, str]:
    """Subject, SHA-256 fingerprint and validity of ``cert``, for /debug and logs."""
    return {
        "subject": cert.subject.rfc4514_string(),
        "fingerprint_sha256": fingerprint(cert),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
    }


def pem(cert: x509.Certificate) -> str:
    """``cert`` as PEM text."""
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _public_numbers(cert: x509.Certificate) -> Any:
    public_key = cert.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise CaConfigError("ca_cert", "the CA certificate's key must be ECDSA or RSA")
    return public_key.public_numbers()


def _require_signed_by(child: x509.Certificate, parent: x509.Certificate) -> None:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise CaConfigError(
            "ca_chain",
            f"{child.subject.rfc4514_string()} is not issued by "
            f"{parent.subject.rfc4514_string()}: {exc}",
        ) from exc


def _require_ca(cert: x509.Certificate) -> None:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CaConfigError("ca_chain", f"{cert.subject.rfc4514_string()} is not a CA certificate")
