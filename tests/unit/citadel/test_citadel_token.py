"""Workload tokens: accepted once for their identity; forged, expired, replayed or
wrongly bound tokens are refused with a reason."""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Mapping

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from services.citadel.core.errors import AuthenticationError, CaUnavailableError
from services.citadel.core.issuer import issue_leaf
from services.citadel.core.material import SigningMaterial, generate_root, pem
from services.citadel.core.token import ISSUER, TokenVerifier, mint_token
from shared.contracts.ca.csr import new_key_and_csr
from shared.contracts.ca.spiffe import SpiffeId
from shared.contracts.ca.tokens import (
    AUDIENCE,
    RenewingTokens,
    b64url_encode,
    json_part,
    renewal_token,
)
from tests.unit.citadel.conftest import SLEEP, START, TRUST_DOMAIN

NOW = START.timestamp()


def reason(verifier: TokenVerifier, token: str, now: float = NOW) -> str:
    with pytest.raises(AuthenticationError) as caught:
        verifier.verify(token, now=now)
    return caught.value.reason


def signed(
    key: Ed25519PrivateKey, header: Mapping[str, object], claims: Mapping[str, object]
) -> str:
    def part(value: Mapping[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    body = f"{part(header)}.{part(claims)}"
    signature = base64.urlsafe_b64encode(key.sign(body.encode())).rstrip(b"=").decode()
    return f"{body}.{signature}"


def claims(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(SLEEP),
        "iat": int(NOW),
        "exp": int(NOW) + 600,
        "jti": "abc",
    }
    return {**base, **overrides}


HEADER = {"alg": "EdDSA", "typ": "JWT"}


def test_token_proves_its_identity_once(
    token_key: Ed25519PrivateKey, verifier: TokenVerifier
) -> None:
    token = mint_token(token_key, SLEEP, ttl_s=600, now=NOW)
    assert verifier.verify(token, now=NOW + 1) == SLEEP
    assert reason(verifier, token, NOW + 2) == "token_replayed"


def test_each_minted_token_is_distinct(
    token_key: Ed25519PrivateKey, verifier: TokenVerifier
) -> None:
    for _ in range(3):
        assert verifier.verify(mint_token(token_key, SLEEP, ttl_s=60, now=NOW), now=NOW) == SLEEP


def test_token_signed_by_another_key_is_forged(verifier: TokenVerifier) -> None:
    forged = mint_token(Ed25519PrivateKey.generate(), SLEEP, ttl_s=600, now=NOW)
    assert reason(verifier, forged) == "bad_token_signature"


def test_changed_claims_break_the_signature(
    token_key: Ed25519PrivateKey, verifier: TokenVerifier
) -> None:
    header, _, signature = mint_token(token_key, SLEEP, ttl_s=600, now=NOW).split(".")
    other = base64.urlsafe_b64encode(
        json.dumps(claims(sub="spiffe://cluster.local/ns/default/sa/admin")).encode()
    )
    tampered = f"{header}.{other.rstrip(b'=').decode()}.{signature}"
    assert reason(verifier, tampered) == "bad_token_signature"


def test_expired_and_future_tokens_are_refused(
    token_key: Ed25519PrivateKey, verifier: TokenVerifier
) -> None:
    token = mint_token(token_key, SLEEP, ttl_s=60, now=NOW)
    assert reason(verifier, token, NOW + 61) == "token_expired"
    assert reason(verifier, token, NOW - 10) == "token_not_yet_valid"
    assert verifier.verify(token, now=NOW + 60) == SLEEP  # refusals do not burn the token


def test_leeway_tolerates_skew(token_key: Ed25519PrivateKey) -> None:
    lenient = TokenVerifier(
        public_key=token_key.public_key(), trust_domain=TRUST_DOMAIN, max_ttl_s=3600, leeway_s=30
    )
    assert lenient.verify(mint_token(token_key, SLEEP, ttl_s=60, now=NOW), now=NOW + 85) == SLEEP
    late = mint_token(token_key, SLEEP, ttl_s=60, now=NOW)
    with pytest.raises(AuthenticationError, match="expired"):
        lenient.verify(late, now=NOW + 95)


def test_overlong_token_lifetime_is_refused(
    token_key: Ed25519PrivateKey, verifier: TokenVerifier
) -> None:
    token = mint_token(token_key, SLEEP, ttl_s=3601, now=NOW)
    assert reason(verifier, token) == "token_lifetime_too_long"


def test_token_for_another_trust_domain_or_audience_is_wrongly_bound(
    token_key: Ed25519PrivateKey, verifier: TokenVerifier
) -> None:
    foreign = mint_token(token_key, SpiffeId("example.org", "default", "sleep"), ttl_s=60, now=NOW)
    assert reason(verifier, foreign) == "token_wrong_binding"
    assert reason(verifier, signed(token_key, HEADER, claims(aud="vault"))) == "token_wrong_binding"
    assert reason(verifier, signed(token_key, HEADER, claims(sub="root"))) == "token_wrong_binding"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b",
        "a.b.c.d",
        "!!!.???.***",
        "e30.e30.",
        base64.urlsafe_b64encode(b"[1]").decode().rstrip("=") + ".e30.AAAA",
    ],
)
def test_malformed_tokens(verifier: TokenVerifier, token: str) -> None:
    assert reason(verifier, token) == "malformed_token"


def test_alg_none_and_missing_claims_are_malformed(
    token_key: Ed25519PrivateKey, verifier: TokenVerifier
) -> None:
    none_alg = signed(token_key, {"alg": "none", "typ": "JWT"}, claims())
    assert reason(verifier, none_alg) == "malformed_token"
    no_jti = {key: value for key, value in claims().items() if key != "jti"}
    assert reason(verifier, signed(token_key, HEADER, no_jti)) == "malformed_token"
    assert reason(verifier, signed(token_key, HEADER, claims(exp="soon"))) == "malformed_token"
    assert reason(verifier, "x" * 5000) == "malformed_token"


def test_replay_memory_is_bounded_and_forgets_expired_tokens(
    token_key: Ed25519PrivateKey,
) -> None:
    small = TokenVerifier(
        public_key=token_key.public_key(),
        trust_domain=TRUST_DOMAIN,
        max_ttl_s=3600,
        leeway_s=0,
        max_remembered=2,
    )
    for _ in range(2):
        small.verify(mint_token(token_key, SLEEP, ttl_s=10, now=NOW), now=NOW)
    with pytest.raises(CaUnavailableError) as full:
        small.verify(mint_token(token_key, SLEEP, ttl_s=10, now=NOW), now=NOW)
    assert full.value.reason == "replay_cache_full"
    later = NOW + 11  # the two remembered tokens have expired: room again
    assert small.verify(mint_token(token_key, SLEEP, ttl_s=10, now=later), now=later) == SLEEP


def test_minting_needs_a_positive_lifetime(token_key: Ed25519PrivateKey) -> None:
    with pytest.raises(ValueError, match="positive"):
        mint_token(token_key, SLEEP, ttl_s=0, now=NOW)


class RenewalFixture:
    """A CA root, a workload certificate from it and the workload's key (PEM)."""

    def __init__(self, identity: SpiffeId = SLEEP, *, hours: float = 1.0) -> None:
        self.root = generate_root(
            key_type="ecdsa-p256",
            ttl=datetime.timedelta(days=30),
            trust_domain=TRUST_DOMAIN,
            now=START - datetime.timedelta(days=1),
        )
        self.key_pem, csr_pem = new_key_and_csr(identity)
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        leaf = issue_leaf(
            SigningMaterial.self_signed(self.root),
            public_key=csr.public_key(),  # type: ignore[arg-type]
            identity=identity,
            lifetime=datetime.timedelta(hours=hours),
            now=START,
        )
        self.chain_pem = pem(leaf) + pem(self.root.cert)

    def verifier(self, token_key: Ed25519PrivateKey) -> TokenVerifier:
        return TokenVerifier(
            public_key=token_key.public_key(),
            trust_domain=TRUST_DOMAIN,
            max_ttl_s=3600,
            leeway_s=0,
            trusted_roots=lambda: [self.root.cert],
        )


def test_renewal_token_proves_the_certificate_identity_once(
    token_key: Ed25519PrivateKey,
) -> None:
    workload = RenewalFixture()
    verifier = workload.verifier(token_key)
    token = renewal_token(workload.key_pem, workload.chain_pem, now=NOW)
    assert verifier.verify(token, now=NOW + 1) == SLEEP
    assert reason(verifier, token, NOW + 2) == "token_replayed"


def test_renewal_token_needs_a_trusted_unexpired_certificate(
    token_key: Ed25519PrivateKey, verifier: TokenVerifier
) -> None:
    workload, stranger = RenewalFixture(), RenewalFixture()
    token = renewal_token(workload.key_pem, workload.chain_pem, now=NOW)
    assert reason(stranger.verifier(token_key), token) == "token_certificate_untrusted"
    late = NOW + 2 * 3600
    expired = renewal_token(workload.key_pem, workload.chain_pem, now=late)
    assert reason(workload.verifier(token_key), expired, late) == "token_certificate_untrusted"
    assert reason(verifier, token) == "malformed_token"  # renewal not enabled there


def test_renewal_token_signed_by_another_key_or_for_another_subject_is_refused(
    token_key: Ed25519PrivateKey,
) -> None:
    workload = RenewalFixture()
    other_key_pem, _ = new_key_and_csr(SLEEP)
    forged = renewal_token(other_key_pem, workload.chain_pem, now=NOW)
    assert reason(workload.verifier(token_key), forged) == "bad_token_signature"
    header, _, _ = renewal_token(workload.key_pem, workload.chain_pem, now=NOW).split(".")
    admin = "spiffe://cluster.local/ns/default/sa/admin"
    body = f"{header}.{json_part(claims(iss=admin, sub=admin))}"
    key = serialization.load_pem_private_key(workload.key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    r, s = decode_dss_signature(key.sign(body.encode(), ec.ECDSA(hashes.SHA256())))
    other_subject = f"{body}.{b64url_encode(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
    assert reason(workload.verifier(token_key), other_subject) == "token_wrong_binding"


async def test_renewing_tokens_use_the_certificate_while_it_lasts() -> None:
    workload = RenewalFixture(hours=1)
    bootstraps: list[str] = []
    clock = [NOW]

    async def bootstrap() -> str:
        bootstraps.append("used")
        return "bootstrap-token"

    credentials: list[tuple[bytes, str] | None] = [None]
    tokens = RenewingTokens(
        bootstrap=bootstrap, credentials=lambda: credentials[0], clock=lambda: clock[0]
    )
    assert await tokens() == "bootstrap-token"
    credentials[0] = (workload.key_pem, workload.chain_pem)
    header = json.loads(base64.urlsafe_b64decode((await tokens()).split(".")[0] + "=="))
    assert header["alg"] == "ES256"
    assert len(header["x5c"]) == 1
    clock[0] = NOW + 3600 - 10  # within the margin of the certificate's expiry
    assert await tokens() == "bootstrap-token"
    assert len(bootstraps) == 2
