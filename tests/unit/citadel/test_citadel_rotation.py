"""Root rotation with overlap: the new root is trusted before it signs, the old one stays
trusted until it expires, and every step survives a restart."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

from services.citadel.adapters.root_store import FileRootStore
from services.citadel.core.issuer import issue_leaf
from services.citadel.core.rotation import (
    IDLE,
    NEXT_PUBLISHED,
    PREVIOUS_RETIRING,
    RootView,
    SelfSignedRoots,
)
from shared.contracts.ca.csr import new_key_and_csr
from tests.unit.citadel.conftest import SLEEP, TRUST_DOMAIN, Clock

TTL = datetime.timedelta(days=100)
GRACE = datetime.timedelta(hours=1)


def make_roots(state: Path) -> SelfSignedRoots:
    return SelfSignedRoots(
        store=FileRootStore(state),
        key_type="ecdsa-p256",
        trust_domain=TRUST_DOMAIN,
        root_ttl=TTL,
        rotation_fraction=0.2,
        rotation_grace=GRACE,
    )


def leaf_from(view: RootView, clock: Clock) -> x509.Certificate:
    csr = x509.load_pem_x509_csr(new_key_and_csr(SLEEP)[1].encode())
    return issue_leaf(
        view.material,
        public_key=csr.public_key(),  # type: ignore[arg-type]
        identity=SLEEP,
        lifetime=datetime.timedelta(days=1),
        now=clock.datetime,
    )


def verifies(leaf: x509.Certificate, view: RootView, clock: Clock) -> bool:
    verifier = PolicyBuilder().store(Store(list(view.trusted))).time(clock.datetime)
    try:
        verifier.build_client_verifier().verify(leaf, [])
    except x509.verification.VerificationError:
        return False
    return True


def phase(roots: SelfSignedRoots, clock: Clock) -> str:
    return str(roots.status(clock.datetime)["rotation"]["phase"])


def test_full_rotation_keeps_every_certificate_verifiable(tmp_path: Path, clock: Clock) -> None:
    roots = make_roots(tmp_path)
    assert roots.load_or_create(clock.datetime) == ["root_created"]
    first = roots.current

    clock.advance((TTL * 0.795).total_seconds())
    assert roots.tick(clock.datetime) == []
    old_leaf = leaf_from(first, clock)
    clock.advance((TTL * 0.005).total_seconds())
    assert roots.tick(clock.datetime) == ["next_root_published"]
    published = roots.current
    assert phase(roots, clock) == NEXT_PUBLISHED
    assert published.material.root == first.material.root  # the old root still signs
    assert len(published.trusted) == 2
    assert verifies(old_leaf, published, clock)

    clock.advance(GRACE.total_seconds() - 1)
    assert roots.tick(clock.datetime) == []
    clock.advance(1)
    assert roots.tick(clock.datetime) == ["next_root_signing"]
    switched = roots.current
    assert phase(roots, clock) == PREVIOUS_RETIRING
    assert switched.material.root == published.trusted[1]
    assert switched.trusted == (switched.material.root, first.material.root)
    new_leaf = leaf_from(switched, clock)
    assert verifies(new_leaf, switched, clock)
    assert verifies(old_leaf, switched, clock)
    assert verifies(new_leaf, published, clock)  # an agent still on the published bundle

    clock.advance((TTL * 0.2).total_seconds())
    assert roots.tick(clock.datetime) == ["previous_root_dropped"]
    assert phase(roots, clock) == IDLE
    assert roots.current.trusted == (switched.material.root,)


def test_each_phase_survives_a_restart(tmp_path: Path, clock: Clock) -> None:
    roots = make_roots(tmp_path)
    roots.load_or_create(clock.datetime)
    for step, republished in (
        ((TTL * 0.85).total_seconds(), ["next_root_republished"]),
        (GRACE.total_seconds(), []),
        (0.0, []),
    ):
        clock.advance(step)
        roots.tick(clock.datetime)
        reloaded = make_roots(tmp_path)
        assert reloaded.load_or_create(clock.datetime) == ["root_loaded", *republished]
        assert reloaded.current.trusted == roots.current.trusted
        assert reloaded.current.material.root == roots.current.material.root
        assert reloaded.status(clock.datetime) == roots.status(clock.datetime)


def test_the_grace_starts_over_when_citadel_restarts(tmp_path: Path, clock: Clock) -> None:
    """Agents cannot fetch the next root while Citadel is down, so downtime is no grace."""
    roots = make_roots(tmp_path)
    roots.load_or_create(clock.datetime)
    clock.advance((TTL * 0.85).total_seconds())
    assert roots.tick(clock.datetime) == ["next_root_published"]
    published = roots.current
    clock.advance((GRACE * 3).total_seconds())  # Citadel stopped at once and was down since

    restarted = make_roots(tmp_path)
    assert restarted.load_or_create(clock.datetime) == ["root_loaded", "next_root_republished"]
    assert restarted.current.material.root == published.material.root  # the old root signs
    assert restarted.current.trusted == published.trusted
    signs_from = restarted.status(clock.datetime)["rotation"]["next_root_signs_from"]
    assert signs_from == (clock.datetime + GRACE).isoformat()
    clock.advance(GRACE.total_seconds() - 1)
    assert restarted.tick(clock.datetime) == []
    clock.advance(1)
    assert restarted.tick(clock.datetime) == ["next_root_signing"]
    assert restarted.current.material.root == published.trusted[1]


def test_an_expired_root_is_replaced_at_start(tmp_path: Path, clock: Clock) -> None:
    make_roots(tmp_path).load_or_create(clock.datetime)
    clock.advance((TTL * 1.5).total_seconds())
    roots = make_roots(tmp_path)
    assert roots.load_or_create(clock.datetime) == ["root_loaded", "expired_root_replaced"]
    root = roots.current.material.root
    assert root.not_valid_before_utc <= clock.datetime < root.not_valid_after_utc
    assert verifies(leaf_from(roots.current, clock), roots.current, clock)


def test_debug_status_names_root_and_rotation(tmp_path: Path, clock: Clock) -> None:
    roots = make_roots(tmp_path)
    roots.load_or_create(clock.datetime)
    status = roots.status(clock.datetime)
    root = roots.current.material.root
    assert status["mode"] == "self-signed"
    assert status["root"]["subject"] == root.subject.rfc4514_string()
    assert status["root"]["not_after"] == root.not_valid_after_utc.isoformat()
    assert status["rotation"]["in_progress"] is False
    assert status["rotation"]["due_at"] < status["root"]["not_after"]
    clock.advance((TTL * 0.9).total_seconds())
    roots.tick(clock.datetime)
    rotation = roots.status(clock.datetime)["rotation"]
    assert rotation["in_progress"] is True
    assert (
        rotation["next_root"]["fingerprint_sha256"] in roots.status(clock.datetime)["trusted_roots"]
    )


def test_roots_are_needed_before_use(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="not loaded"):
        _ = make_roots(tmp_path).current
