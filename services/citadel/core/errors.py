"""Citadel's exception hierarchy; every refusal names a ``reason`` (a metric label).

::

    CitadelError                    reason: str, a short snake_case label
    ├── AuthenticationError         the caller's token does not prove an identity
    ├── PermissionDeniedError       the CSR asks for more than the caller's identity
    ├── InvalidRequestError         the request itself is malformed or too large
    ├── CaUnavailableError          the CA cannot sign now (no usable signing root)
    └── CaConfigError               the CA material (state dir, plugged-in files) is unusable

The gRPC adapter maps the first four to status codes in one table; ``CaConfigError``
fails start-up. Messages are safe to send to the caller and to log: they never contain a
token, a CSR or a key.
"""

from __future__ import annotations


class CitadelError(Exception):
    """Base of Citadel's errors; ``reason`` labels the rejection in metrics and logs."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class AuthenticationError(CitadelError):
    """Missing, malformed, forged, expired, replayed or wrongly bound token."""


class PermissionDeniedError(CitadelError):
    """The CSR names another identity or extra subject alternative names."""


class InvalidRequestError(CitadelError):
    """Garbage or oversized CSR, bad CSR signature, key type not allowed, bad validity."""


class CaUnavailableError(CitadelError):
    """No root can sign right now."""


class CaConfigError(CitadelError):
    """The CA's files are missing, unreadable or inconsistent."""
