"""Signing a workload certificate for a checked CSR.

:func:`issue_leaf` certifies ``public_key`` as ``identity`` with the signer of
``material``: an empty subject, the SPIFFE URI as the only (critical) subject alternative
name, not a CA, digital signature and key encipherment, server and client auth, a random
serial, the signer's key identifier. It is valid from :func:`~.material.backdate` before
``now`` until ``now + lifetime``, but never beyond the signer's own expiry.

Pure function (apart from the random serial), safe from any thread. Errors:
:class:`~services.citadel.core.errors.CaUnavailableError` (``signing_root_expired``)
when the signer has expired.
"""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from services.citadel.core.csr import WorkloadPublicKey
from services.citadel.core.errors import CaUnavailableError
from services.citadel.core.material import SigningMaterial, backdate
from shared.contracts.ca.spiffe import SpiffeId

_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=True,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)
_EXTENDED_KEY_USAGE = x509.ExtendedKeyUsage(
    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
)


def issue_leaf(
    material: SigningMaterial,
    *,
    public_key: WorkloadPublicKey,
    identity: SpiffeId,
    lifetime: datetime.timedelta,
    now: datetime.datetime,
) -> x509.Certificate:
    """The workload certificate; see the module docstring."""
    signer = material.signer.cert
    not_after = min(now + lifetime, signer.not_valid_after_utc)
    if not_after <= now:
        raise CaUnavailableError("signing_root_expired", "the signing CA has expired")
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(signer.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(max(now - backdate(lifetime), signer.not_valid_before_utc))
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(str(identity))]),
            critical=True,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_KEY_USAGE, critical=True)
        .add_extension(_EXTENDED_KEY_USAGE, critical=False)
        .add_extension(_authority_key_id(signer), critical=False)
        .sign(material.signer.key, hashes.SHA256())
    )


def _authority_key_id(signer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = signer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key())  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
