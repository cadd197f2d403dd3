"""The async client workload agents use to get certificates from Citadel.

:class:`CertificateClient` calls ``splitmesh.ca.v1.CertificateService`` at ``target``
(``host:port``). Before each ``CreateCertificate`` it awaits ``token_provider()`` for a
fresh identity token (Citadel accepts each token once) and sends it as
``authorization: Bearer <token>``. The channel is opened on first use, on the running
event loop, plaintext unless ``credentials`` are given; :meth:`CertificateClient.close`
releases it (idempotent; ``async with`` does it too). Trace context is propagated.

Errors, so an agent knows whether retrying can help:

- :class:`CertificateError` — base; ``code`` is the gRPC status name, ``str()`` Citadel's
  reason (never a token or a key).
- :class:`CertificateRejectedError` — INVALID_ARGUMENT, PERMISSION_DENIED,
  UNAUTHENTICATED: the same request will fail again.
- :class:`CitadelUnavailableError` — anything else (UNAVAILABLE, DEADLINE_EXCEEDED, ...):
  keep the current certificate and retry with backoff.

An exception from ``token_provider`` propagates unchanged. Task safety: one client may be
shared by tasks of one event loop; calls are independent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import grpc

from shared.contracts.ca.v1 import ca_pb2, ca_pb2_grpc
from shared.telemetry import client_interceptors

TokenProvider = Callable[[], Awaitable[str]]

_REJECTED = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
    }
)


class CertificateError(Exception):
    """Citadel did not issue; ``code`` is the gRPC status code name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class CertificateRejectedError(CertificateError):
    """Citadel refused the request itself; retrying it unchanged will not help."""


class CitadelUnavailableError(CertificateError):
    """Citadel could not be reached or could not answer now; retry later."""


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """What Citadel returned: the chain (leaf first, root last) and the roots to trust."""

    chain: tuple[str, ...]
    trusted_roots: tuple[str, ...]

    @property
    def leaf(self) -> str:
        """The workload certificate (PEM)."""
        return self.chain[0]

    @property
    def chain_pem(self) -> str:
        """The chain as one PEM text (what Envoy's ``certificate_chain`` wants)."""
        return "".join(_with_newline(pem) for pem in self.chain)

    @property
    def roots_pem(self) -> str:
        """The trusted roots as one PEM text (what Envoy's ``trusted_ca`` wants)."""
        return "".join(_with_newline(pem) for pem in self.trusted_roots)


class CertificateClient:
    """Gets certificates from the Citadel at ``target`` for the identity the tokens prove."""

    def __init__(
        self,
        target: str,
        token_provider: TokenProvider,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float = 10.0,
        max_reconnect_backoff_s: float = 5.0,
    ) -> None:
        """``timeout`` bounds each call (seconds); ``credentials`` select TLS;
        ``max_reconnect_backoff_s`` caps gRPC's own wait between connection attempts (its
        default grows to two minutes, longer than a restarted Citadel needs)."""
        self._target = target
        self._token_provider = token_provider
        self._credentials = credentials
        self._timeout = timeout
        self._options = [
            ("grpc.initial_reconnect_backoff_ms", min(200, int(max_reconnect_backoff_s * 1000))),
            ("grpc.max_reconnect_backoff_ms", int(max_reconnect_backoff_s * 1000)),
        ]
        self._channel: Any = None
        self._stub: ca_pb2_grpc.CertificateServiceStub | None = None

    @property
    def target(self) -> str:
        """Citadel's ``host:port``."""
        return self._target

    async def create_certificate(self, csr_pem: str, validity_s: int = 0) -> IssuedCertificate:
        """Send ``csr_pem`` for signing (``validity_s`` 0: Citadel's default lifetime)."""
        token = await self._token_provider()
        request = ca_pb2.CreateCertificateRequest(csr=csr_pem, validity_duration=validity_s)
        try:
            response = await self._connected().CreateCertificate(
                request, timeout=self._timeout, metadata=(("authorization", f"Bearer {token}"),)
            )
        except grpc.aio.AioRpcError as exc:
            raise _error(exc) from exc
        if not response.cert_chain:
            raise CitadelUnavailableError("UNKNOWN", "Citadel returned an empty chain")
        return IssuedCertificate(tuple(response.cert_chain), tuple(response.trusted_roots))

    async def trust_bundle(self) -> tuple[str, ...]:
        """The roots workloads must trust now (PEM, the signing root first)."""
        try:
            bundle = await self._connected().GetTrustBundle(
                ca_pb2.GetTrustBundleRequest(), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise _error(exc) from exc
        return tuple(bundle.trusted_roots)

    async def close(self) -> None:
        """Close the channel. Idempotent; the next call reopens one."""
        channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            await channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _connected(self) -> ca_pb2_grpc.CertificateServiceStub:
        if self._stub is None:
            interceptors = client_interceptors()
            if self._credentials is None:
                channel = grpc.aio.insecure_channel(
                    self._target, options=self._options, interceptors=interceptors
                )
            else:
                channel = grpc.aio.secure_channel(
                    self._target,
                    self._credentials,
                    options=self._options,
                    interceptors=interceptors,
                )
            self._channel = channel
            self._stub = ca_pb2_grpc.CertificateServiceStub(channel)
        return self._stub


def _error(exc: grpc.aio.AioRpcError) -> CertificateError:
    code = exc.code()
    kind = CertificateRejectedError if code in _REJECTED else CitadelUnavailableError
    return kind(code.name, exc.details() or "no details")


def _with_newline(pem: str) -> str:
    return pem if pem.endswith("\n") else pem + "\n"
