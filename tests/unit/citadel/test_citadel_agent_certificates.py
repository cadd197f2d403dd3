"""The agent's certificate manager against the real CA core in-process: a first
certificate for its own key, renewal at half its life, the current certificate kept
while Citadel is down, and new roots published at once."""

from __future__ import annotations

import asyncio
import datetime
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.citadel.adapters.root_store import FileRootStore
from services.citadel.core.authority import CertificateAuthority, Lifetimes
from services.citadel.core.rotation import SelfSignedRoots
from services.citadel.core.token import TokenVerifier, mint_token
from shared.contracts.ca.client import CitadelUnavailableError, IssuedCertificate
from shared.contracts.ca.spiffe import SpiffeId
from sidecar.certificates import WorkloadCertificate, WorkloadCertificates
from tests.unit.citadel.conftest import SLEEP, TRUST_DOMAIN

WAIT_S = 10.0


class InProcessSigner:
    """The CA core behind the agent's signer port (as the monolith wires it).

    ``down`` makes every call fail as an unreachable Citadel would; ``refuse_signing``
    fails only signing (the trust bundle still answers).
    """

    def __init__(self, state: Path) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.roots = SelfSignedRoots(
            store=FileRootStore(state),
            key_type="ecdsa-p256",
            trust_domain=TRUST_DOMAIN,
            root_ttl=datetime.timedelta(days=1),
            rotation_fraction=0.2,
            rotation_grace=datetime.timedelta(hours=1),
        )
        self.roots.load_or_create(datetime.datetime.now(datetime.UTC))
        self.authority = CertificateAuthority(
            roots=self.roots,
            verifier=TokenVerifier(
                public_key=self.key.public_key(), trust_domain=TRUST_DOMAIN, max_ttl_s=600
            ),
            lifetimes=Lifetimes(
                default=datetime.timedelta(hours=1), maximum=datetime.timedelta(hours=2)
            ),
            allowed_key_types=("ecdsa-p256",),
            max_csr_bytes=8192,
        )
        self.down = False
        self.refuse_signing = False

    async def create_certificate(self, csr_pem: str, validity_s: int = 0) -> IssuedCertificate:
        self._check_up()
        if self.refuse_signing:
            raise CitadelUnavailableError("UNAVAILABLE", "signing is paused")
        token = mint_token(self.key, SLEEP, ttl_s=60, now=time.time())
        issued = self.authority.create_certificate(
            authorization=f"Bearer {token}", csr_pem=csr_pem, validity_s=validity_s
        )
        return IssuedCertificate(issued.chain, issued.trusted_roots)

    async def trust_bundle(self) -> tuple[str, ...]:
        self._check_up()
        return self.authority.trusted_roots()

    def _check_up(self) -> None:
        if self.down:
            raise CitadelUnavailableError("UNAVAILABLE", "Citadel is down")


@pytest.fixture
def signer(tmp_path: Path) -> InProcessSigner:
    return InProcessSigner(tmp_path)


def manager(signer: InProcessSigner, *, validity_s: int = 0) -> WorkloadCertificates:
    return WorkloadCertificates(
        identity=SLEEP,
        signer=signer,
        validity_s=validity_s,
        root_poll_s=0.05,
        initial_backoff_s=0.02,
        max_backoff_s=0.1,
    )


async def next_version(certificates: WorkloadCertificates, after: int) -> WorkloadCertificate:
    return await asyncio.wait_for(certificates.wait_for(after), WAIT_S)


async def test_first_certificate_is_for_the_local_key(signer: InProcessSigner) -> None:
    certificates = manager(signer)
    await certificates.start()
    try:
        first = await next_version(certificates, 0)
    finally:
        await certificates.stop()
    leaf = x509.load_pem_x509_certificate(first.chain_pem.encode())
    key = serialization.load_pem_private_key(first.key_pem, password=None)
    assert leaf.public_key() == key.public_key()
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [str(SLEEP)]
    assert first.roots_pem == signer.authority.trusted_roots()[0]
    assert first.version == 1
    assert "PRIVATE" not in repr(first)
    status = certificates.status()
    assert status["certificate"]["serial"] == f"{leaf.serial_number:x}"
    assert status["renewals"] == 1


async def test_renews_at_about_half_its_life_with_a_new_key(signer: InProcessSigner) -> None:
    certificates = manager(signer, validity_s=2)
    await certificates.start()
    try:
        first = await next_version(certificates, 0)
        issued_at = time.time()
        second = await next_version(certificates, first.version)
        renewed_at = time.time()
    finally:
        await certificates.stop()
    life = first.not_after.timestamp() - issued_at
    elapsed = renewed_at - issued_at
    assert 0.45 * life - 0.05 <= elapsed < life  # never after expiry; not before 45 %
    assert second.serial != first.serial
    assert second.key_pem != first.key_pem


async def test_keeps_the_certificate_while_citadel_is_down_and_recovers(
    signer: InProcessSigner,
) -> None:
    certificates = manager(signer, validity_s=2)
    await certificates.start()
    try:
        first = await next_version(certificates, 0)
        signer.down = True
        deadline = time.monotonic() + WAIT_S
        while certificates.status()["failures"] < 3:
            assert time.monotonic() < deadline, certificates.status()
            await asyncio.sleep(0.05)
        assert certificates.current == first
        assert "Citadel is down" in (certificates.last_error or "")
        signer.down = False
        recovered = await next_version(certificates, first.version)
    finally:
        await certificates.stop()
    assert recovered.serial != first.serial
    assert certificates.last_error is None


async def test_first_certificate_arrives_once_citadel_comes_up(signer: InProcessSigner) -> None:
    signer.down = True
    certificates = manager(signer)
    await certificates.start()
    try:
        await asyncio.sleep(0.2)
        assert certificates.current is None
        signer.down = False
        assert (await next_version(certificates, 0)).version == 1
    finally:
        await certificates.stop()


async def test_new_roots_are_published_at_once_then_the_leaf_renewed(
    signer: InProcessSigner,
) -> None:
    certificates = manager(signer)
    await certificates.start()
    try:
        first = await next_version(certificates, 0)
        signer.refuse_signing = True  # so the roots-only version stays visible
        later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=20)
        assert signer.roots.tick(later) == ["next_root_published"]
        roots_only = await next_version(certificates, first.version)
        signer.refuse_signing = False
        renewed = await next_version(certificates, roots_only.version)
    finally:
        await certificates.stop()
    bundle = "".join(signer.authority.trusted_roots())
    assert roots_only.serial == first.serial
    assert roots_only.roots_pem == bundle
    assert renewed.serial != first.serial
    assert renewed.roots_pem == bundle


async def test_new_roots_are_published_while_renewal_backs_off(signer: InProcessSigner) -> None:
    """Citadel signs with a new root a grace after publishing it, whether or not this
    agent's own renewal succeeds: a backing-off agent must trust it in time too."""
    certificates = manager(signer, validity_s=2)
    await certificates.start()
    try:
        first = await next_version(certificates, 0)
        signer.refuse_signing = True
        deadline = time.monotonic() + WAIT_S
        while certificates.status()["failures"] < 2:  # due, refused: backing off
            assert time.monotonic() < deadline, certificates.status()
            await asyncio.sleep(0.02)
        later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=20)
        assert signer.roots.tick(later) == ["next_root_published"]
        roots_only = await next_version(certificates, first.version)
    finally:
        await certificates.stop()
    assert roots_only.serial == first.serial
    assert roots_only.roots_pem == "".join(signer.authority.trusted_roots())
    assert certificates.status()["renewals"] == 1


def test_arguments_are_checked(signer: InProcessSigner) -> None:
    with pytest.raises(ValueError, match="rotation_fraction"):
        WorkloadCertificates(
            identity=SpiffeId(TRUST_DOMAIN, "a", "b"), signer=signer, rotation_fraction=1.5
        )
