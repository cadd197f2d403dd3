"""The request path: the caller gets a verifiable certificate for its own identity only,
lifetimes are capped, refusals are counted by reason and logged without secrets."""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.verification import PolicyBuilder, Store
from opentelemetry import metrics
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from services.citadel.adapters.root_store import FileRootStore
from services.citadel.core.authority import CertificateAuthority, IssuedChain, Lifetimes
from services.citadel.core.errors import (
    AuthenticationError,
    InvalidRequestError,
    PermissionDeniedError,
)
from services.citadel.core.rotation import SelfSignedRoots
from services.citadel.core.token import TokenVerifier, mint_token
from shared.contracts.ca.csr import new_key_and_csr
from shared.contracts.ca.spiffe import SpiffeId
from tests.unit.citadel.conftest import HTTPBIN, SLEEP, TRUST_DOMAIN, Clock, counter_values

DAY = datetime.timedelta(days=1)


class Harness:
    """A CertificateAuthority over a real root store in a temporary directory."""

    def __init__(
        self,
        *,
        tmp_path: Path,
        clock: Clock,
        token_key: Ed25519PrivateKey,
        verifier: TokenVerifier,
        meter: metrics.Meter,
        root_ttl: datetime.timedelta = 3650 * DAY,
    ) -> None:
        self.clock = clock
        self.token_key = token_key
        self.roots = SelfSignedRoots(
            store=FileRootStore(tmp_path / "state"),
            key_type="ecdsa-p256",
            trust_domain=TRUST_DOMAIN,
            root_ttl=root_ttl,
            rotation_fraction=0.2,
            rotation_grace=datetime.timedelta(hours=1),
        )
        self.roots.load_or_create(clock.datetime)
        self.authority = CertificateAuthority(
            roots=self.roots,
            verifier=verifier,
            lifetimes=Lifetimes(default=DAY, maximum=30 * DAY),
            allowed_key_types=("ecdsa-p256", "rsa-2048"),
            max_csr_bytes=8192,
            clock=clock,
            meter=meter,
        )

    def token(self, identity: SpiffeId = SLEEP) -> str:
        return mint_token(self.token_key, identity, ttl_s=600, now=self.clock())

    def request(
        self, csr_identity: SpiffeId = SLEEP, *, validity_s: int = 0, token: str | None = None
    ) -> IssuedChain:
        _, csr_pem = new_key_and_csr(csr_identity)
        return self.authority.create_certificate(
            authorization=f"Bearer {token or self.token()}",
            csr_pem=csr_pem,
            validity_s=validity_s,
            peer="ipv4:127.0.0.1:5555",
        )


@pytest.fixture
def harness(
    tmp_path: Path,
    clock: Clock,
    token_key: Ed25519PrivateKey,
    verifier: TokenVerifier,
    meter: metrics.Meter,
) -> Harness:
    return Harness(
        tmp_path=tmp_path, clock=clock, token_key=token_key, verifier=verifier, meter=meter
    )


def verified_identity(issued: IssuedChain, at: datetime.datetime) -> list[str]:
    chain = [x509.load_pem_x509_certificate(pem.encode()) for pem in issued.chain]
    roots = [x509.load_pem_x509_certificate(pem.encode()) for pem in issued.trusted_roots]
    verifier = PolicyBuilder().store(Store(roots)).time(at).build_client_verifier()
    result = verifier.verify(chain[0], chain[1:-1])
    return [str(name.value) for name in result.subjects or []]


def lifetime(issued: IssuedChain, clock: Clock) -> datetime.timedelta:
    leaf = x509.load_pem_x509_certificate(issued.chain[0].encode())
    return leaf.not_valid_after_utc - clock.datetime


def test_caller_gets_a_chain_for_its_own_identity(harness: Harness, clock: Clock) -> None:
    issued = harness.request()
    assert len(issued.chain) == 2
    assert issued.chain[-1] == issued.trusted_roots[0]
    assert verified_identity(issued, clock.datetime) == [str(SLEEP)]
    leaf = x509.load_pem_x509_certificate(issued.chain[0].encode())
    assert leaf.subject == x509.Name([])
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_csr_for_another_identity_is_denied(harness: Harness) -> None:
    with pytest.raises(PermissionDeniedError, match="httpbin"):
        harness.request(HTTPBIN)


def test_default_lifetime_and_requested_lifetimes_are_capped(
    harness: Harness, clock: Clock
) -> None:
    assert lifetime(harness.request(), clock) == DAY
    assert lifetime(harness.request(validity_s=3600), clock) == datetime.timedelta(hours=1)
    assert lifetime(harness.request(validity_s=365 * 86400), clock) == 30 * DAY
    with pytest.raises(InvalidRequestError, match="negative"):
        harness.request(validity_s=-1)


def test_fresh_leaf_is_already_valid_where_the_clock_is_behind(
    harness: Harness, clock: Clock
) -> None:
    clock.advance(0.7)  # mid-second: X.509 times are whole seconds
    short = harness.request(validity_s=20)
    start = x509.load_pem_x509_certificate(short.chain[0].encode()).not_valid_before_utc
    assert start <= clock.datetime - datetime.timedelta(seconds=2)  # backdated lifetime / 10
    assert verified_identity(short, clock.datetime - datetime.timedelta(seconds=1.9)) == [
        str(SLEEP)
    ]
    default = x509.load_pem_x509_certificate(harness.request().chain[0].encode())
    assert default.not_valid_before_utc <= clock.datetime - datetime.timedelta(minutes=5)


def test_leaf_never_outlives_its_root(
    tmp_path: Path,
    clock: Clock,
    token_key: Ed25519PrivateKey,
    verifier: TokenVerifier,
    meter: metrics.Meter,
) -> None:
    short = Harness(
        tmp_path=tmp_path,
        clock=clock,
        token_key=token_key,
        verifier=verifier,
        meter=meter,
        root_ttl=datetime.timedelta(hours=2),
    )
    leaf = x509.load_pem_x509_certificate(short.request().chain[0].encode())
    root = short.roots.current.material.root
    assert leaf.not_valid_after_utc == root.not_valid_after_utc


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        (None, "missing_token"),
        ("", "missing_token"),
        ("Basic dXNlcjpwYXNz", "malformed_token"),
        ("Bearer", "malformed_token"),
        ("Bearer not-a-jwt", "malformed_token"),
    ],
)
def test_requests_without_a_valid_bearer_token_are_unauthenticated(
    harness: Harness, authorization: str | None, expected: str
) -> None:
    _, csr_pem = new_key_and_csr(SLEEP)
    with pytest.raises(AuthenticationError) as caught:
        harness.authority.create_certificate(
            authorization=authorization, csr_pem=csr_pem, validity_s=0
        )
    assert caught.value.reason == expected


def test_replayed_token_is_refused(harness: Harness) -> None:
    token = harness.token()
    harness.request(token=token)
    with pytest.raises(AuthenticationError, match="already used"):
        harness.request(token=token)


def test_outcomes_are_counted(harness: Harness, metric_reader: InMemoryMetricReader) -> None:
    harness.request()
    harness.request()
    for identity in (HTTPBIN, HTTPBIN):
        with pytest.raises(PermissionDeniedError):
            harness.request(identity)
    with pytest.raises(AuthenticationError):
        harness.request(token="garbage")
    assert counter_values(metric_reader, "citadel.certs.issued", "key_type") == {"ecdsa-p256": 2}
    assert counter_values(metric_reader, "citadel.requests.rejected", "reason") == {
        "identity_mismatch": 2,
        "malformed_token": 1,
    }


def test_logs_name_the_caller_and_reason_but_no_secret(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    token = harness.token()
    _, csr_pem = new_key_and_csr(HTTPBIN)
    caplog.set_level(logging.INFO)
    with pytest.raises(PermissionDeniedError):
        harness.authority.create_certificate(
            authorization=f"Bearer {token}", csr_pem=csr_pem, validity_s=0, peer="ipv4:10.0.0.1:1"
        )
    harness.request()
    refused, issued = caplog.records[-2], caplog.records[-1]
    assert refused.levelno == logging.WARNING
    assert refused.__dict__["reason"] == "identity_mismatch"
    assert str(SLEEP) in refused.getMessage()
    assert "10.0.0.1" in refused.getMessage()
    assert str(SLEEP) in issued.getMessage()
    body = csr_pem.splitlines()[1]
    for record in caplog.records:
        text = record.getMessage() + repr(record.__dict__)
        assert token.split(".")[2] not in text
        assert body not in text
        assert "PRIVATE KEY" not in text
