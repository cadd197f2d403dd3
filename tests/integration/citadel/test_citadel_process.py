"""Citadel as a real process: a workload gets a verifiable certificate for its own
identity only; bad requests get a clear status, are counted, and leak no secret; the root
survives a restart and rotates with overlap."""

from __future__ import annotations

import asyncio
import stat
import time
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.verification import PolicyBuilder, Store

from services.citadel.core.token import mint_token
from shared.contracts.ca.client import (
    CertificateClient,
    CertificateRejectedError,
    CitadelUnavailableError,
    IssuedCertificate,
)
from shared.contracts.ca.csr import new_key_and_csr
from shared.contracts.ca.spiffe import SpiffeId

if TYPE_CHECKING:
    from tests.integration.citadel.conftest import CitadelProcess, LaunchCitadel

SLEEP = SpiffeId("cluster.local", "default", "sleep")
HTTPBIN = SpiffeId("cluster.local", "default", "httpbin")
WAIT_S = 20.0


def verify(issued: IssuedCertificate) -> x509.Certificate:
    """Verify the chain against the returned roots; return the leaf."""
    chain = [x509.load_pem_x509_certificate(pem.encode()) for pem in issued.chain]
    roots = [x509.load_pem_x509_certificate(pem.encode()) for pem in issued.trusted_roots]
    verifier = PolicyBuilder().store(Store(roots)).build_client_verifier()
    verifier.verify(chain[0], chain[1:-1])
    return chain[0]


def fingerprint(pem: str) -> str:
    return x509.load_pem_x509_certificate(pem.encode()).fingerprint(hashes.SHA256()).hex()


async def rejected(client: CertificateClient, csr_pem: str, validity_s: int = 0) -> str:
    with pytest.raises(CertificateRejectedError) as caught:
        await client.create_certificate(csr_pem, validity_s)
    return caught.value.code


async def test_workload_gets_a_chain_for_its_own_identity(launch_citadel: LaunchCitadel) -> None:
    citadel = launch_citadel()
    key_pem, csr_pem = new_key_and_csr(SLEEP)
    issued = await citadel.client().create_certificate(csr_pem)
    leaf = verify(issued)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [str(SLEEP)]
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert leaf.public_key() == key.public_key()
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert 24 * 3600 <= lifetime.total_seconds() <= 24 * 3600 + 300
    root = citadel.debug_root()["root"]
    assert fingerprint(issued.chain[-1]) == root["fingerprint_sha256"]
    assert await citadel.client().trust_bundle() == issued.trusted_roots
    assert citadel.metric("citadel_certs_issued_total", key_type="ecdsa-p256") == 1


async def test_bad_requests_get_clear_statuses_and_are_counted(
    launch_citadel: LaunchCitadel,
) -> None:
    citadel = launch_citadel({"SPLITMESH_CITADEL_MAX_CSR_BYTES": "4096"})
    client = citadel.client()
    assert await rejected(client, new_key_and_csr(HTTPBIN)[1]) == "PERMISSION_DENIED"
    assert await rejected(client, "-----BEGIN CERTIFICATE REQUEST-----\ngarbage") == (
        "INVALID_ARGUMENT"
    )
    assert await rejected(client, "x" * 5000) == "INVALID_ARGUMENT"
    assert await rejected(client, new_key_and_csr(SLEEP)[1], -5) == "INVALID_ARGUMENT"
    assert citadel.metric("citadel_requests_rejected_total", reason="identity_mismatch") == 1
    assert citadel.metric("citadel_requests_rejected_total", reason="malformed_csr") == 1
    assert citadel.metric("citadel_requests_rejected_total", reason="oversized") == 1
    assert citadel.metric("citadel_requests_rejected_total", reason="bad_validity") == 1


async def test_forged_replayed_expired_and_missing_tokens_are_unauthenticated(
    launch_citadel: LaunchCitadel,
) -> None:
    citadel = launch_citadel()
    replayed = citadel.token()
    forged = mint_token(Ed25519PrivateKey.generate(), SLEEP, ttl_s=60, now=time.time())
    expired = mint_token(citadel.token_key, SLEEP, ttl_s=60, now=time.time() - 3600)
    tokens = iter([replayed, replayed, forged, expired, ""])

    async def next_token() -> str:
        return next(tokens)

    async with CertificateClient(citadel.target, next_token) as client:
        csr_pem = new_key_and_csr(SLEEP)[1]
        await client.create_certificate(csr_pem)
        for reason in ("token_replayed", "bad_token_signature", "token_expired"):
            with pytest.raises(CertificateRejectedError) as caught:
                await client.create_certificate(csr_pem)
            assert caught.value.code == "UNAUTHENTICATED"
            assert citadel.metric("citadel_requests_rejected_total", reason=reason) == 1
        assert await rejected(client, csr_pem) == "UNAUTHENTICATED"
    log = citadel.log_text()
    for secret in (replayed, forged, expired):
        assert secret.split(".")[2] not in log
    assert "PRIVATE KEY" not in log


async def test_root_persists_across_restart_with_its_key_private(
    launch_citadel: LaunchCitadel,
) -> None:
    citadel = launch_citadel()
    first = await citadel.client().create_certificate(new_key_and_csr(SLEEP)[1])
    assert citadel.stop() == 0
    keys = list((citadel.state_dir / "roots").glob("*.key"))
    assert [stat.S_IMODE(path.stat().st_mode) for path in keys] == [0o600]
    citadel.start()
    second = await citadel.client().create_certificate(new_key_and_csr(SLEEP)[1])
    assert second.chain[-1] == first.chain[-1]
    verify(IssuedCertificate(first.chain, second.trusted_roots))


async def test_unreachable_citadel_is_retryable(launch_citadel: LaunchCitadel) -> None:
    citadel = launch_citadel()
    client = citadel.client()
    citadel.stop()
    with pytest.raises(CitadelUnavailableError) as caught:
        await client.create_certificate(new_key_and_csr(SLEEP)[1])
    assert caught.value.code == "UNAVAILABLE"


async def test_root_rotates_with_overlap(launch_citadel: LaunchCitadel) -> None:
    citadel = launch_citadel(
        {
            # The root is due ~1.7 s after creation and the new one signs 0.3 s later; the
            # old root stays trusted until it expires at 5 s: 3 s of overlap to observe.
            "SPLITMESH_CITADEL_ROOT_TTL_S": "5",
            "SPLITMESH_CITADEL_ROOT_ROTATION_FRACTION": "0.6",
            "SPLITMESH_CITADEL_ROOT_ROTATION_GRACE_S": "0.3",
            "SPLITMESH_CITADEL_ROOT_CHECK_INTERVAL_S": "0.05",
        }
    )
    client = citadel.client()
    before = await client.create_certificate(new_key_and_csr(SLEEP)[1])
    old_root = fingerprint(before.chain[-1])
    await wait_for_phase(citadel, "previous-root-retiring")
    status = citadel.debug_root()
    assert status["rotation"]["in_progress"] is True
    assert status["rotation"]["previous_root"]["fingerprint_sha256"] == old_root
    after = await client.create_certificate(new_key_and_csr(SLEEP)[1])
    assert fingerprint(after.chain[-1]) == status["root"]["fingerprint_sha256"] != old_root
    assert {fingerprint(pem) for pem in after.trusted_roots} >= {
        old_root,
        status["root"]["fingerprint_sha256"],
    }
    verify(after)
    verify(IssuedCertificate(before.chain, after.trusted_roots))  # old leaves still verify
    assert citadel.metric("citadel_root_events_total", event="next_root_signing") >= 1


async def wait_for_phase(citadel: CitadelProcess, phase: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while citadel.debug_root()["rotation"]["phase"] != phase:
        assert time.monotonic() < deadline, f"no {phase} in {citadel.debug_root()}"
        await asyncio.sleep(0.05)
