"""Keys on disk: private keys 0600 (directories 0700), certificates 0644, corrupt or
mismatched files refused rather than silently replaced."""

from __future__ import annotations

import datetime
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.citadel.adapters.key_files import (
    load_or_create_token_key,
    load_token_public_key,
    private_key_pem,
    write_file,
)
from services.citadel.adapters.root_store import FileRootStore
from services.citadel.core.errors import CaConfigError
from services.citadel.core.material import KeyPair, RootSet, fingerprint, generate_root
from tests.unit.citadel.conftest import START, TRUST_DOMAIN


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def new_root(days: int = 365) -> KeyPair:
    return generate_root(
        key_type="ecdsa-p256",
        ttl=datetime.timedelta(days=days),
        trust_domain=TRUST_DOMAIN,
        now=START,
    )


def test_saved_roots_load_back_with_safe_modes(tmp_path: Path) -> None:
    store = FileRootStore(tmp_path / "state")
    assert store.load() is None
    root = new_root()
    store.save(RootSet(signing=root))
    loaded = store.load()
    assert loaded is not None
    assert loaded.signing.cert == root.cert
    assert loaded.signing.key.private_numbers() == root.key.private_numbers()
    keys = list((tmp_path / "state" / "roots").glob("*.key"))
    certs = list((tmp_path / "state" / "roots").glob("*.crt"))
    assert [mode(path) for path in keys] == [0o600]
    assert [mode(path) for path in certs] == [0o644]
    assert mode(tmp_path / "state") == 0o700
    assert mode(tmp_path / "state" / "roots") == 0o700


def test_a_retired_root_keeps_its_certificate_but_not_its_key(tmp_path: Path) -> None:
    store = FileRootStore(tmp_path)
    old, new = new_root(), new_root()
    store.save(RootSet(signing=old, next=new, next_published_at=START))
    assert len(list((tmp_path / "roots").glob("*.key"))) == 2
    store.save(RootSet(signing=new, previous=old.cert))
    names = sorted(path.name for path in (tmp_path / "roots").iterdir())
    assert names == sorted(
        [
            f"{fingerprint(new.cert)}.crt",
            f"{fingerprint(new.cert)}.key",
            f"{fingerprint(old.cert)}.crt",
        ]
    )
    loaded = store.load()
    assert loaded is not None
    assert loaded.previous == old.cert
    assert loaded.next is None


def test_missing_or_foreign_key_is_a_config_error(tmp_path: Path) -> None:
    store = FileRootStore(tmp_path)
    root = new_root()
    store.save(RootSet(signing=root))
    key_path = next((tmp_path / "roots").glob("*.key"))
    write_file(key_path, private_key_pem(new_root().key), 0o600)
    with pytest.raises(CaConfigError, match="not the key"):
        store.load()
    key_path.unlink()
    with pytest.raises(CaConfigError, match="missing"):
        store.load()
    (tmp_path / "roots.json").write_text(json.dumps({"signing": 3}))
    with pytest.raises(CaConfigError, match="not a valid root index"):
        store.load()


def test_token_key_is_created_0600_once_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "launcher" / "token-signing.key"
    key = load_or_create_token_key(path)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    again = load_or_create_token_key(path)
    assert again.private_bytes_raw() == key.private_bytes_raw()
    assert load_token_public_key(path) == key.public_key()


def test_token_public_key_file_and_wrong_kinds(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    public_path = tmp_path / "token.pub"
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    assert load_token_public_key(public_path) == key.public_key()
    ec_path = tmp_path / "ec.key"
    write_file(ec_path, private_key_pem(new_root().key), 0o600)
    with pytest.raises(CaConfigError, match="not an Ed25519"):
        load_token_public_key(ec_path)
    with pytest.raises(CaConfigError, match="not an Ed25519"):
        load_or_create_token_key(ec_path)
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("hello")
    with pytest.raises(CaConfigError, match="not a PEM public key"):
        load_token_public_key(garbage)
