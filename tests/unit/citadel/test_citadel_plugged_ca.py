"""A plugged-in CA (Istio's cacerts): chains through the intermediate to the given root;
inconsistent files are refused at start."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.citadel.adapters.key_files import private_key_pem
from services.citadel.adapters.plugged_ca import load_plugged_ca
from services.citadel.core.errors import CaConfigError
from services.citadel.core.issuer import issue_leaf
from services.citadel.core.material import KeyPair, generate_root
from services.citadel.core.rotation import PluggedRoots
from shared.contracts.ca.csr import new_key_and_csr
from tests.unit.citadel.conftest import SLEEP, START, TRUST_DOMAIN


def intermediate(root: KeyPair, *, ca: bool = True) -> KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intermediate")]))
        .issuer_name(root.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(START - datetime.timedelta(days=1))
        .not_valid_after(START + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(root.key, hashes.SHA256())
    )
    return KeyPair(cert, key)


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)


def cacerts(directory: Path, signer: KeyPair, chain: list[x509.Certificate], root: KeyPair) -> Path:
    directory.mkdir()
    (directory / "ca-cert.pem").write_bytes(pem(signer.cert))
    (directory / "ca-key.pem").write_bytes(private_key_pem(signer.key))
    (directory / "cert-chain.pem").write_bytes(pem(*chain))
    (directory / "root-cert.pem").write_bytes(pem(root.cert))
    return directory


@pytest.fixture
def root() -> KeyPair:
    return generate_root(
        key_type="ecdsa-p256",
        ttl=datetime.timedelta(days=3650),
        trust_domain=TRUST_DOMAIN,
        now=START - datetime.timedelta(days=2),
    )


def test_leaf_chains_through_the_intermediate(tmp_path: Path, root: KeyPair) -> None:
    middle = intermediate(root)
    material = load_plugged_ca(cacerts(tmp_path / "ca", middle, [middle.cert, root.cert], root))
    assert material.issuers == (middle.cert, root.cert)
    csr = x509.load_pem_x509_csr(new_key_and_csr(SLEEP)[1].encode())
    leaf = issue_leaf(
        material,
        public_key=csr.public_key(),  # type: ignore[arg-type]
        identity=SLEEP,
        lifetime=datetime.timedelta(hours=1),
        now=START,
    )
    leaf.verify_directly_issued_by(middle.cert)
    roots = PluggedRoots(material)
    assert roots.tick(START) == []
    status = roots.status(START)
    assert status["mode"] == "plugged"
    assert status["rotation"]["in_progress"] is False
    assert status["signer"]["subject"] == "CN=intermediate"


def test_the_root_itself_may_sign(tmp_path: Path, root: KeyPair) -> None:
    material = load_plugged_ca(cacerts(tmp_path / "ca", root, [], root))
    assert material.issuers == (root.cert,)


def test_inconsistent_material_is_refused(tmp_path: Path, root: KeyPair) -> None:
    middle = intermediate(root)
    stranger = generate_root(
        key_type="ecdsa-p256", ttl=datetime.timedelta(days=30), trust_domain="x", now=START
    )
    with pytest.raises(CaConfigError, match="does not match"):
        load_plugged_ca(cacerts(tmp_path / "a", KeyPair(middle.cert, stranger.key), [], root))
    with pytest.raises(CaConfigError, match="is not issued by"):
        load_plugged_ca(cacerts(tmp_path / "b", middle, [], stranger))
    not_ca = intermediate(root, ca=False)
    with pytest.raises(CaConfigError, match="not a CA"):
        load_plugged_ca(cacerts(tmp_path / "c", not_ca, [], root))
    (tmp_path / "d").mkdir()
    with pytest.raises(CaConfigError, match=r"ca-cert\.pem is missing"):
        load_plugged_ca(tmp_path / "d")
