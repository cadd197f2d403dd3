"""A fresh private key and a PKCS#10 CSR for a workload identity, as Citadel expects them.

:func:`new_key_and_csr` generates the key locally (the caller keeps it: it must never be
sent or logged) and a CSR whose only subject alternative name is the identity's URI.
Pure function, safe from any thread; CPU cost is one key generation (ECDSA P-256: well
under a millisecond; RSA: tens of milliseconds or more).
Errors: an unknown key type raises ``ValueError``.
"""

from __future__ import annotations

from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shared.contracts.ca.spiffe import SpiffeId

WorkloadKeyType = Literal["ecdsa-p256", "rsa-2048"]


def new_key_and_csr(
    identity: SpiffeId, key_type: WorkloadKeyType = "ecdsa-p256"
) -> tuple[bytes, str]:
    """Return ``(private_key_pem, csr_pem)``: a PKCS#8 key and a CSR for ``identity``."""
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if key_type == "ecdsa-p256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif key_type == "rsa-2048":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        raise ValueError(f"unknown key type {key_type!r}; use ecdsa-p256 or rsa-2048")
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(str(identity))]),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, csr.public_bytes(serialization.Encoding.PEM).decode()
