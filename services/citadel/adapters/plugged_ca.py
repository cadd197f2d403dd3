"""A plugged-in CA read from files in Istio's ``cacerts`` layout.

:func:`load_plugged_ca` reads ``ca-cert.pem`` (the signing certificate), ``ca-key.pem``
(its key), ``cert-chain.pem`` (optional, may be empty: the chain from the signing certificate up, in
order) and ``root-cert.pem`` (the trust anchor) from one directory, and validates them
with :meth:`~services.citadel.core.material.SigningMaterial.checked`. When the signing
certificate is the root itself, ``ca-cert.pem`` and ``root-cert.pem`` are the same file.

Errors: :class:`~services.citadel.core.errors.CaConfigError` naming the file for a
missing or unreadable file and for material that does not form a chain (never quoting a
key). Reads files only; safe from any thread.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from services.citadel.adapters.key_files import load_private_key
from services.citadel.core.errors import CaConfigError
from services.citadel.core.material import SigningMaterial

CA_CERT = "ca-cert.pem"
CA_KEY = "ca-key.pem"
CERT_CHAIN = "cert-chain.pem"
ROOT_CERT = "root-cert.pem"


def load_plugged_ca(directory: Path) -> SigningMaterial:
    """Read and validate the CA files in ``directory``; see the module docstring."""
    for name in (CA_CERT, CA_KEY, ROOT_CERT):
        if not (directory / name).is_file():
            raise CaConfigError("plugged_ca", f"{directory / name} is missing")
    chain_path = directory / CERT_CHAIN
    return SigningMaterial.checked(
        cert=_certs(directory / CA_CERT)[0],
        key=load_private_key(directory / CA_KEY),
        chain=_certs(chain_path) if _has_content(chain_path) else [],
        root=_certs(directory / ROOT_CERT)[0],
    )


def _has_content(path: Path) -> bool:
    return path.is_file() and bool(path.read_bytes().strip())


def _certs(path: Path) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise CaConfigError("plugged_ca", f"{path} holds no readable PEM certificate") from exc
    return certs
