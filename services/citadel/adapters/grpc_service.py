"""Citadel's gRPC servicer: ``splitmesh.ca.v1.CertificateService`` over the core CA.

:func:`register` adds a :class:`CertificateServicer` to a ``grpc.aio.Server`` it is handed;
it never owns a listener. ``CreateCertificate`` passes the request's ``authorization``
metadata, CSR, validity and peer address to
:meth:`~services.citadel.core.authority.CertificateAuthority.create_certificate` (through
the narrow :class:`Issuer`);
``GetTrustBundle`` needs no token (roots are public).

Errors: a core refusal ends the call with the status in :data:`STATUS_OF` (looked up
along the error's class hierarchy) and the error's message, which never holds a secret.
Anything else is a bug and surfaces as grpc's UNKNOWN. Task safety: handlers run on the
event loop; the core call is synchronous and short.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import grpc

from services.citadel.core.authority import IssuedChain
from services.citadel.core.errors import (
    AuthenticationError,
    CaUnavailableError,
    CitadelError,
    InvalidRequestError,
    PermissionDeniedError,
)
from shared.contracts.ca.v1 import ca_pb2, ca_pb2_grpc

STATUS_OF: Mapping[type[CitadelError], grpc.StatusCode] = {
    AuthenticationError: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDeniedError: grpc.StatusCode.PERMISSION_DENIED,
    InvalidRequestError: grpc.StatusCode.INVALID_ARGUMENT,
    CaUnavailableError: grpc.StatusCode.UNAVAILABLE,
    CitadelError: grpc.StatusCode.INTERNAL,
}


class Issuer(Protocol):
    """What the servicer needs: the core CA (or something that delegates to it)."""

    def create_certificate(
        self, *, authorization: str | None, csr_pem: str, validity_s: int, peer: str = ""
    ) -> IssuedChain:
        """Issue, or raise a :class:`CitadelError`."""
        ...

    def trusted_roots(self) -> tuple[str, ...]:
        """The roots to trust now (PEM)."""
        ...


class CertificateServicer(ca_pb2_grpc.CertificateServiceServicer):
    """Serves certificate requests from an :class:`Issuer`."""

    def __init__(self, authority: Issuer) -> None:
        self._authority = authority

    async def CreateCertificate(  # noqa: N802  (the generated method name)
        self, request: ca_pb2.CreateCertificateRequest, context: grpc.aio.ServicerContext
    ) -> ca_pb2.CreateCertificateResponse:
        """Authenticate the caller, check its CSR and return the signed chain."""
        try:
            issued = self._authority.create_certificate(
                authorization=_authorization(context),
                csr_pem=request.csr,
                validity_s=request.validity_duration,
                peer=context.peer(),
            )
        except CitadelError as exc:
            await context.abort(status_of(exc), str(exc))
        return ca_pb2.CreateCertificateResponse(
            cert_chain=issued.chain, trusted_roots=issued.trusted_roots
        )

    async def GetTrustBundle(  # noqa: N802  (the generated method name)
        self, request: ca_pb2.GetTrustBundleRequest, context: grpc.aio.ServicerContext
    ) -> ca_pb2.TrustBundle:
        """The roots to trust now."""
        return ca_pb2.TrustBundle(trusted_roots=self._authority.trusted_roots())


def register(server: grpc.aio.Server, authority: Issuer) -> CertificateServicer:
    """Add a :class:`CertificateServicer` for ``authority`` to ``server`` (not yet started)."""
    servicer = CertificateServicer(authority)
    ca_pb2_grpc.add_CertificateServiceServicer_to_server(servicer, server)
    return servicer


def status_of(error: CitadelError) -> grpc.StatusCode:
    """The status code a core error ends a call with."""
    return next(STATUS_OF[cls] for cls in type(error).__mro__ if cls in STATUS_OF)


def _authorization(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            return value
    return None
