"""Self-signed certificates and key files."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from shared.tls import self_signed_certificate, write_key_pair


def test_certificate_names_key_and_validity() -> None:
    cert_pem, key_pem = self_signed_certificate(
        "galley.istio-system.svc",
        [
            "galley.istio-system.svc",
            "127.0.0.1",
            "spiffe://cluster.local/ns/istio-system/sa/galley",
        ],
        valid_days=30,
    )
    cert = x509.load_pem_x509_certificate(cert_pem)
    key = load_pem_private_key(key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)
    assert cert.public_key() == key.public_key()
    assert cert.subject == cert.issuer
    common_name = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert common_name == "galley.istio-system.svc"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["galley.istio-system.svc"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://cluster.local/ns/istio-system/sa/galley"
    ]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert 30 <= lifetime.days <= 31
    cert.verify_directly_issued_by(cert)  # self-signed: its own issuer


def test_each_call_makes_a_new_key() -> None:
    _, first = self_signed_certificate("a", ["a"])
    _, second = self_signed_certificate("a", ["a"])
    assert first != second


@pytest.mark.parametrize(("sans", "days"), [([], 1), (["a"], 0)])
def test_bad_arguments_are_refused(sans: list[str], days: int) -> None:
    with pytest.raises(ValueError):
        self_signed_certificate("a", sans, valid_days=days)


def test_write_key_pair_makes_the_key_owner_only(tmp_path: Path) -> None:
    cert, key = self_signed_certificate("webhook", ["localhost"])
    cert_path, key_path = write_key_pair(tmp_path / "certs", cert, key)
    assert cert_path.read_bytes() == cert
    assert key_path.read_bytes() == key
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert_path.stat().st_mode) == 0o644
    assert sorted(p.name for p in (tmp_path / "certs").iterdir()) == ["tls.crt", "tls.key"]


def test_write_key_pair_tightens_an_existing_world_readable_key(tmp_path: Path) -> None:
    (tmp_path / "tls.key").write_bytes(b"old")
    (tmp_path / "tls.key").chmod(0o644)
    cert, key = self_signed_certificate("webhook", ["localhost"])
    _, key_path = write_key_pair(tmp_path, cert, key)
    assert key_path.read_bytes() == key
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
