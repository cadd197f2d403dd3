"""Key and certificate files: atomic writes with the right modes, PEM loading.

:func:`write_file` replaces a file atomically (a reader sees the old or the new content,
never half) with the given mode; private keys are written 0600 from their first byte.
:func:`load_or_create_token_key` is the local launcher's Ed25519 token signing key:
loaded if present, else generated and stored 0600 (the directory is created 0700).
:func:`load_token_public_key` reads the Ed25519 key Citadel verifies tokens with (a
public key, or the public half of a private key file).

Errors: I/O problems raise ``OSError``; a file that is not the expected PEM raises
:class:`~services.citadel.core.errors.CaConfigError` naming the file (never its content).
Safe from any thread; concurrent creators of the same key file may each write one, the
last rename wins (the launcher creates it before starting workloads).
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.citadel.core.errors import CaConfigError
from services.citadel.core.material import CaPrivateKey
from shared.tls import write_atomically

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644
DIRECTORY_MODE = 0o700


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` atomically with permission bits ``mode``."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=DIRECTORY_MODE)
    write_atomically(path, data, mode)


def private_key_pem(key: CaPrivateKey | Ed25519PrivateKey) -> bytes:
    """PKCS#8 PEM of a private key (for a file written 0600, never for a log or a wire)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(path: Path) -> object:
    """The unencrypted PEM private key in ``path`` (any algorithm; callers check it)."""
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise CaConfigError("ca_key", f"{path} is not an unencrypted PEM private key") from exc


def load_or_create_token_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 signing key at ``path``, generated (0600) if the file does not exist."""
    if path.exists():
        key = load_private_key(path)
        if not isinstance(key, Ed25519PrivateKey):
            raise CaConfigError("token_key", f"{path} is not an Ed25519 private key")
        return key
    key = Ed25519PrivateKey.generate()
    write_file(path, private_key_pem(key), PRIVATE_MODE)
    return key


def load_token_public_key(path: Path) -> Ed25519PublicKey:
    """The Ed25519 public key in ``path`` (a PUBLIC KEY, or the public half of a PRIVATE KEY)."""
    data = path.read_bytes()
    if b"PRIVATE KEY" in data:
        private = load_private_key(path)
        if not isinstance(private, Ed25519PrivateKey):
            raise CaConfigError("token_key", f"{path} is not an Ed25519 key")
        return private.public_key()
    try:
        public = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise CaConfigError("token_key", f"{path} is not a PEM public key") from exc
    if not isinstance(public, Ed25519PublicKey):
        raise CaConfigError("token_key", f"{path} is not an Ed25519 public key")
    return public
