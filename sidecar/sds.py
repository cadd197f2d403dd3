"""The agent's SDS v3 server: Envoy's certificate and roots over a Unix socket.

:class:`SdsServer` is a :class:`~shared.lifecycle.Component` serving
``envoy.service.secret.v3.SecretDiscoveryService`` on ``unix:<socket_path>`` (the parent
directory is created 0700 and the socket made 0600: the private key travels on it). It
serves two secrets from a :class:`CertificateSource`:

- :data:`DEFAULT_SECRET` (``default``): ``tls_certificate`` with the chain and the key;
- :data:`ROOT_SECRET` (``ROOTCA``): ``validation_context.trusted_ca`` with the roots.

``StreamSecrets`` is state of the world: a request naming resources (the first one, or a
change of names) is answered with every requested secret we have, as soon as a
certificate exists (until then Envoy waits, its listeners warming); each new certificate
version is pushed to every open stream; an ACK (the last nonce, no error) is not
answered; a NACK is logged and not answered. Unknown names are left out (Envoy keeps
waiting for them). ``FetchSecrets`` answers once, waiting for the first certificate up
to the call's deadline. ``DeltaSecrets`` is not implemented (UNIMPLEMENTED).
``version_info`` is the certificate's version.

Task safety: one event loop; each stream owns its reader task, cancelled when the stream
ends. Errors: ``start()`` raises ``OSError`` if the socket cannot be bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc
from google.protobuf import any_pb2

from sidecar.certificates import WorkloadCertificate

_log = logging.getLogger(__name__)

DEFAULT_SECRET = "default"
ROOT_SECRET = "ROOTCA"
SECRET_TYPE_URL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
_OPTIONS = [("grpc.so_reuseport", 0)]


class CertificateSource(Protocol):
    """What SDS serves from: the agent's :class:`~sidecar.certificates.WorkloadCertificates`."""

    @property
    def current(self) -> WorkloadCertificate | None:
        """The published certificate, or None before the first."""
        ...

    async def wait_for(self, after_version: int = 0) -> WorkloadCertificate:
        """The certificate once its version is above ``after_version``."""
        ...


class SdsServer:
    """Serves SDS on a Unix socket (module docstring)."""

    def __init__(
        self, socket_path: Path, certificates: CertificateSource, *, grace: float = 1.0
    ) -> None:
        self._path = socket_path
        self._certificates = certificates
        self._grace = grace
        self._server: Any = None
        self._stopping: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        """``sds <socket path>``, for logs."""
        return f"sds {self._path}"

    @property
    def socket_path(self) -> Path:
        """Where Envoy connects (a ``pipe`` address in its bootstrap)."""
        return self._path

    async def start(self) -> None:
        """Bind the socket (replacing a stale one) and serve."""
        if self._server is not None:
            raise RuntimeError(f"{self.name} was already started")
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._path.unlink(missing_ok=True)
        server = grpc.aio.server(options=_OPTIONS)
        sds_pb2_grpc.add_SecretDiscoveryServiceServicer_to_server(
            _SdsServicer(self._certificates), server
        )
        try:
            server.add_insecure_port(f"unix:{self._path}")
        except RuntimeError as exc:
            raise OSError(f"{self.name}: cannot bind: {exc}") from exc
        await server.start()
        os.chmod(self._path, 0o600)
        self._server = server

    async def stop(self) -> None:
        """Stop serving and remove the socket. Idempotent."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._shutdown())
        await asyncio.shield(self._stopping)

    async def _shutdown(self) -> None:
        if self._server is not None:
            await self._server.stop(self._grace)
        self._path.unlink(missing_ok=True)


def secrets(certificate: WorkloadCertificate, names: Sequence[str]) -> list[secret_pb2.Secret]:
    """The secrets among ``names`` that ``certificate`` provides, in request order."""
    found = []
    for name in names:
        if name == DEFAULT_SECRET:
            found.append(
                secret_pb2.Secret(
                    name=name,
                    tls_certificate=common_pb2.TlsCertificate(
                        certificate_chain=base_pb2.DataSource(
                            inline_bytes=certificate.chain_pem.encode()
                        ),
                        private_key=base_pb2.DataSource(inline_bytes=certificate.key_pem),
                    ),
                )
            )
        elif name == ROOT_SECRET:
            found.append(
                secret_pb2.Secret(
                    name=name,
                    validation_context=common_pb2.CertificateValidationContext(
                        trusted_ca=base_pb2.DataSource(inline_bytes=certificate.roots_pem.encode())
                    ),
                )
            )
    return found


def _response(certificate: WorkloadCertificate, names: Sequence[str]) -> Any:
    resources = []
    for secret in secrets(certificate, names):
        packed = any_pb2.Any()
        packed.Pack(secret)
        resources.append(packed)
    return discovery_pb2.DiscoveryResponse(
        version_info=str(certificate.version),
        resources=resources,
        type_url=SECRET_TYPE_URL,
        nonce=uuid.uuid4().hex,
    )


class _Stream:
    """One StreamSecrets stream's state, updated by its reader task."""

    def __init__(self) -> None:
        self.names: tuple[str, ...] = ()
        self.answer_due = False
        self.wake = asyncio.Event()

    def apply(self, request: Any) -> None:
        if request.HasField("error_detail"):
            _log.warning(
                "envoy rejected secrets version %s (nonce %s): %s",
                request.version_info,
                request.response_nonce,
                request.error_detail.message,
            )
            return
        names = tuple(request.resource_names)
        if names != self.names or not request.response_nonce:  # else an ACK: nothing to send
            self.names = names
            self.answer_due = True
            self.wake.set()


class _SdsServicer(sds_pb2_grpc.SecretDiscoveryServiceServicer):  # type: ignore[misc]
    def __init__(self, certificates: CertificateSource) -> None:
        self._certificates = certificates

    async def StreamSecrets(  # noqa: N802  (the generated method name)
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        """State-of-the-world secrets for one Envoy subscription (module docstring)."""
        stream = _Stream()
        reader = asyncio.create_task(_read(request_iterator, stream), name="sds-reader")
        sent_version = 0
        try:
            while not reader.done():
                current = self._certificates.current
                if (
                    current is not None
                    and stream.names
                    and (stream.answer_due or current.version != sent_version)
                ):
                    response = _response(current, stream.names)
                    stream.answer_due = False
                    sent_version = current.version
                    yield response
                    continue
                await _first_of(
                    reader,
                    stream.wake.wait(),
                    self._certificates.wait_for(current.version if current else 0),
                )
                stream.wake.clear()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def FetchSecrets(  # noqa: N802  (the generated method name)
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> Any:
        """The requested secrets once a certificate exists."""
        current = self._certificates.current or await self._certificates.wait_for(0)
        return _response(current, tuple(request.resource_names))


async def _read(requests: AsyncIterator[Any], stream: _Stream) -> None:
    async for request in requests:
        stream.apply(request)


async def _first_of(reader: asyncio.Task[None], *waits: Any) -> None:
    """Wait until ``reader`` ends or one of ``waits`` completes; cancel the rest."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait({reader, *tasks}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
