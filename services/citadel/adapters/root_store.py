"""The self-signed CA's roots on disk: a :class:`~services.citadel.ports.RootStore`.

Layout under ``directory`` (created 0700)::

    roots/<sha256>.crt   0644  a root certificate (PEM)
    roots/<sha256>.key   0600  its private key (PKCS#8 PEM), only while it signs or is next
    roots.json           0644  {"signing": fp, "next": fp|null, "next_published_at": iso|null,
                                "previous": fp|null}

:meth:`FileRootStore.save` writes any new certificate and key first, then replaces
``roots.json`` atomically (the commit point), then deletes the files it no longer names
(the previous root keeps its certificate, not its key). A crash at any point leaves the
old or the new state. :meth:`FileRootStore.load` returns None when ``roots.json`` does
not exist (first start) and raises
:class:`~services.citadel.core.errors.CaConfigError` when it names a missing or corrupt
file or a key that does not match its certificate.

Not thread-safe; one owner (Citadel's event loop) uses it.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from services.citadel.adapters.key_files import (
    DIRECTORY_MODE,
    PRIVATE_MODE,
    PUBLIC_MODE,
    load_private_key,
    private_key_pem,
    write_file,
)
from services.citadel.core.errors import CaConfigError
from services.citadel.core.material import CaPrivateKey, KeyPair, RootSet, fingerprint

_INDEX = "roots.json"
_INDEX_FIELDS = ("signing", "next", "next_published_at", "previous")
_ROOTS = "roots"


class FileRootStore:
    """Roots kept in ``directory``; see the module docstring."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    @property
    def directory(self) -> Path:
        """Where the roots live."""
        return self._directory

    def load(self) -> RootSet | None:
        """The saved roots, or None if nothing was ever saved here."""
        index_path = self._directory / _INDEX
        if not index_path.exists():
            return None
        try:
            index = json.loads(index_path.read_text())
            if not all(isinstance(index.get(k), str | None) for k in _INDEX_FIELDS):
                raise TypeError("index fields must be strings or null")
            published = index.get("next_published_at")
            return RootSet(
                signing=self._key_pair(index["signing"]),
                next=self._key_pair(index["next"]) if index.get("next") else None,
                next_published_at=datetime.datetime.fromisoformat(published) if published else None,
                previous=self._cert(index["previous"]) if index.get("previous") else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CaConfigError("root_store", f"{index_path} is not a valid root index") from exc

    def save(self, roots: RootSet) -> None:
        """Make ``roots`` the saved state (see the module docstring for the order)."""
        self._directory.mkdir(parents=True, exist_ok=True, mode=DIRECTORY_MODE)
        (self._directory / _ROOTS).mkdir(exist_ok=True, mode=DIRECTORY_MODE)
        keep: set[Path] = set()
        for pair in (roots.signing, roots.next):
            if pair is not None:
                keep |= self._write_pair(pair)
        if roots.previous is not None:
            keep.add(self._write_cert(roots.previous))
        index: dict[str, Any] = {
            "signing": fingerprint(roots.signing.cert),
            "next": fingerprint(roots.next.cert) if roots.next else None,
            "next_published_at": roots.next_published_at.isoformat()
            if roots.next_published_at
            else None,
            "previous": fingerprint(roots.previous) if roots.previous else None,
        }
        write_file(self._directory / _INDEX, json.dumps(index, indent=2).encode(), PUBLIC_MODE)
        for path in (self._directory / _ROOTS).iterdir():
            if path not in keep:
                path.unlink(missing_ok=True)

    def _write_pair(self, pair: KeyPair) -> set[Path]:
        key_path = self._directory / _ROOTS / f"{fingerprint(pair.cert)}.key"
        if not key_path.exists():
            write_file(key_path, private_key_pem(pair.key), PRIVATE_MODE)
        return {self._write_cert(pair.cert), key_path}

    def _write_cert(self, cert: x509.Certificate) -> Path:
        path = self._directory / _ROOTS / f"{fingerprint(cert)}.crt"
        if not path.exists():
            write_file(path, cert.public_bytes(serialization.Encoding.PEM), PUBLIC_MODE)
        return path

    def _cert(self, name: str) -> x509.Certificate:
        path = self._directory / _ROOTS / f"{name}.crt"
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise CaConfigError("root_store", f"cannot read root certificate {path}") from exc
        if fingerprint(cert) != name:
            raise CaConfigError("root_store", f"{path} does not hold the root it is named after")
        return cert

    def _key_pair(self, name: str) -> KeyPair:
        cert = self._cert(name)
        path = self._directory / _ROOTS / f"{name}.key"
        if not path.exists():
            raise CaConfigError("root_store", f"root key {path} is missing")
        key = load_private_key(path)
        if not isinstance(key, CaPrivateKey) or key.public_key() != cert.public_key():
            raise CaConfigError("root_store", f"{path} is not the key of its root certificate")
        return KeyPair(cert, key)
