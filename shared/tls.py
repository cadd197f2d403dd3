"""Self-signed serving certificates, for a webhook or server that has none configured.

:func:`self_signed_certificate` makes an ECDSA P-256 key and a certificate that is its own
trust anchor: give the certificate to clients as their CA (a Kubernetes ``caBundle``,
``ssl.create_default_context(cafile=...)``, ``grpc.ssl_channel_credentials``). It is valid
for TLS servers and clients, from five minutes ago (clock skew) for ``valid_days``.
:func:`write_key_pair` stores the pair so that only the owner can read the key.

Pure functions apart from the files :func:`write_key_pair` writes; safe from any thread.
Errors: an empty ``sans`` list or a non-positive ``valid_days`` raises ``ValueError``.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"
_CLOCK_SKEW = datetime.timedelta(minutes=5)


def self_signed_certificate(
    common_name: str, sans: list[str], *, valid_days: int = 365
) -> tuple[bytes, bytes]:
    """Return ``(cert_pem, key_pem)`` for ``common_name`` and the subject alternative names.

    Each SAN is an IP address if it parses as one, a URI if it contains ``://`` (SPIFFE
    identities), and a DNS name otherwise.
    """
    if not sans:
        raise ValueError("a certificate needs at least one subject alternative name")
    if valid_days <= 0:
        raise ValueError(f"valid_days must be positive, not {valid_days}")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    public_key = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=valid_days))
        .add_extension(x509.SubjectAlternativeName([_general_name(s) for s in sans]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def write_key_pair(directory: str | os.PathLike[str], cert: bytes, key: bytes) -> tuple[Path, Path]:
    """Write ``tls.crt`` (0644) and ``tls.key`` (0600) into ``directory``; return their paths.

    The directory is created if missing. Each file is replaced atomically, so a reader never
    sees half a key, and the key is never readable by others, not even for a moment.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / CERT_FILE, folder / KEY_FILE
    write_atomically(cert_path, cert, 0o644)
    write_atomically(key_path, key, 0o600)
    return cert_path, key_path


def write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data`` (mode ``mode``, fsynced) so no reader sees half of it.

    The bytes are never readable with looser permissions than ``mode``, not even briefly.
    """
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _general_name(san: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(san))
    except ValueError:
        pass
    if "://" in san:
        return x509.UniformResourceIdentifier(san)
    return x509.DNSName(san)
