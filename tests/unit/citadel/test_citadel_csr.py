"""CSR parsing and checks: only the caller's own SPIFFE identity, nothing else."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from services.citadel.core.csr import check_csr, key_type_of
from services.citadel.core.errors import (
    CitadelError,
    InvalidRequestError,
    PermissionDeniedError,
)
from shared.contracts.ca.csr import new_key_and_csr
from tests.unit.citadel.conftest import HTTPBIN, SLEEP

ALLOWED = ("ecdsa-p256", "rsa-2048")
MAX_BYTES = 16 * 1024


def build_csr(names: list[x509.GeneralName] | None, key: object = None, subject: str = "") -> str:
    signing_key = key or ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, subject)] if subject else [])
    )
    if names is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    algorithm = None if isinstance(signing_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = builder.sign(signing_key, algorithm)  # type: ignore[arg-type]
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def check(csr_pem: str, allowed: tuple[str, ...] = ALLOWED, max_bytes: int = MAX_BYTES) -> str:
    return check_csr(csr_pem, caller=SLEEP, allowed_key_types=allowed, max_bytes=max_bytes).key_type


def refusal(csr_pem: str, **kwargs: object) -> CitadelError:
    with pytest.raises(CitadelError) as caught:
        check(csr_pem, **kwargs)  # type: ignore[arg-type]
    return caught.value


def test_own_identity_is_accepted_with_its_key() -> None:
    key_pem, csr_pem = new_key_and_csr(SLEEP)
    checked = check_csr(csr_pem, caller=SLEEP, allowed_key_types=ALLOWED, max_bytes=MAX_BYTES)
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert checked.public_key == key.public_key()
    assert checked.key_type == "ecdsa-p256"


def test_rsa_csr_is_accepted_and_subject_is_ignored() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr_pem = build_csr([x509.UniformResourceIdentifier(str(SLEEP))], key, subject="admin")
    assert check(csr_pem) == "rsa-2048"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgY3Ny\n-----END CERTIFICATE REQUEST-----\n",
        "-----BEGIN CERTIFICATE REQUEST-----\n\x00\xff garbage",
    ],
)
def test_garbage_is_malformed(text: str) -> None:
    error = refusal(text)
    assert isinstance(error, InvalidRequestError)
    assert error.reason == "malformed_csr"


def test_two_requests_in_one_pem_are_malformed() -> None:
    _, csr_pem = new_key_and_csr(SLEEP)
    assert refusal(csr_pem + csr_pem).reason == "malformed_csr"


def test_tampered_csr_fails_its_signature() -> None:
    own = x509.load_pem_x509_csr(new_key_and_csr(SLEEP)[1].encode())
    other_key = ec.generate_private_key(ec.SECP256R1())
    # Re-sign the same request body with a different key but keep the original public key:
    # swap the public key inside a correctly signed request by rebuilding the DER by hand.
    forged = x509.load_pem_x509_csr(
        build_csr([x509.UniformResourceIdentifier(str(SLEEP))], other_key).encode()
    )
    own_spki = own.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged_spki = forged.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    der = forged.public_bytes(serialization.Encoding.DER).replace(forged_spki, own_spki)
    pem = x509.load_der_x509_csr(der).public_bytes(serialization.Encoding.PEM).decode()
    error = refusal(pem)
    assert isinstance(error, InvalidRequestError)
    assert error.reason == "bad_csr_signature"


def test_key_type_outside_the_allowed_list_is_refused() -> None:
    p384 = build_csr(
        [x509.UniformResourceIdentifier(str(SLEEP))], ec.generate_private_key(ec.SECP384R1())
    )
    assert refusal(p384).reason == "key_type_not_allowed"
    assert check(p384, allowed=("ecdsa-p384",)) == "ecdsa-p384"
    ed = build_csr(
        [x509.UniformResourceIdentifier(str(SLEEP))], ed25519.Ed25519PrivateKey.generate()
    )
    assert refusal(ed, allowed=(*ALLOWED, "ed25519")).reason == "key_type_not_allowed"


def test_missing_uri_san_is_invalid() -> None:
    assert refusal(build_csr(None)).reason == "no_spiffe_id"
    assert refusal(build_csr([x509.DNSName("sleep.default.svc")])).reason == "no_spiffe_id"


def test_another_identity_is_permission_denied() -> None:
    error = refusal(new_key_and_csr(HTTPBIN)[1])
    assert isinstance(error, PermissionDeniedError)
    assert error.reason == "identity_mismatch"
    assert str(HTTPBIN) in str(error)


def test_own_identity_plus_another_is_permission_denied() -> None:
    csr_pem = build_csr(
        [x509.UniformResourceIdentifier(str(SLEEP)), x509.UniformResourceIdentifier(str(HTTPBIN))]
    )
    assert refusal(csr_pem).reason == "identity_mismatch"


@pytest.mark.parametrize(
    "extra",
    [
        x509.DNSName("httpbin.default.svc.cluster.local"),
        x509.RFC822Name("root@example.com"),
        x509.UniformResourceIdentifier(str(SLEEP)),
    ],
)
def test_extra_sans_are_permission_denied(extra: x509.GeneralName) -> None:
    error = refusal(build_csr([x509.UniformResourceIdentifier(str(SLEEP)), extra]))
    assert isinstance(error, PermissionDeniedError)
    assert error.reason == "extra_sans"


def test_oversized_csr_is_refused_before_parsing() -> None:
    _, csr_pem = new_key_and_csr(SLEEP)
    error = refusal(csr_pem + " " * 2000, max_bytes=len(csr_pem) + 100)
    assert isinstance(error, InvalidRequestError)
    assert error.reason == "oversized"


def test_key_type_labels() -> None:
    assert key_type_of(ec.generate_private_key(ec.SECP521R1()).public_key()) == "ecdsa-p521"
    assert key_type_of(ed25519.Ed25519PrivateKey.generate().public_key()) == "ed25519"
