"""The agent's SDS server on a real Unix socket, driven by a gRPC client speaking Envoy's
protocol: answers once a certificate exists, pushes new versions, stays quiet on ACK and
NACK, serves only what is asked, and keeps the socket private."""

from __future__ import annotations

import asyncio
import datetime
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc
from google.rpc import status_pb2

from sidecar.certificates import WorkloadCertificate
from sidecar.sds import DEFAULT_SECRET, ROOT_SECRET, SECRET_TYPE_URL, SdsServer

WAIT_S = 5.0
QUIET_S = 0.2


class PublishedCertificates:
    """A CertificateSource fake: tests publish versions by hand."""

    def __init__(self) -> None:
        self.current: WorkloadCertificate | None = None
        self._changed = asyncio.Condition()

    async def publish(self, version: int) -> WorkloadCertificate:
        now = datetime.datetime.now(datetime.UTC)
        certificate = WorkloadCertificate(
            version=version,
            key_pem=f"KEY {version}".encode(),
            chain_pem=f"CHAIN {version}",
            roots_pem=f"ROOTS {version}",
            serial=version,
            not_before=now,
            not_after=now + datetime.timedelta(hours=1),
            fingerprint=f"{version:064x}",
        )
        async with self._changed:
            self.current = certificate
            self._changed.notify_all()
        return certificate

    async def wait_for(self, after_version: int = 0) -> WorkloadCertificate:
        async with self._changed:
            await self._changed.wait_for(
                lambda: self.current is not None and self.current.version > after_version
            )
            assert self.current is not None
            return self.current


class EnvoyLikeStream:
    """One StreamSecrets call: send requests; responses are collected by a reader task."""

    def __init__(self, stub: Any) -> None:
        self._requests: asyncio.Queue[Any] = asyncio.Queue()
        self._responses: asyncio.Queue[Any] = asyncio.Queue()
        self._call = stub.StreamSecrets(self._iterate())
        self._reader = asyncio.create_task(self._read())

    async def _iterate(self) -> AsyncIterator[Any]:
        while True:
            yield await self._requests.get()

    async def _read(self) -> None:
        async for response in self._call:
            await self._responses.put(response)

    async def request(
        self, names: list[str], *, nonce: str = "", version: str = "", error: str = ""
    ) -> None:
        message = discovery_pb2.DiscoveryRequest(
            resource_names=names,
            type_url=SECRET_TYPE_URL,
            response_nonce=nonce,
            version_info=version,
        )
        if error:
            message.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
        await self._requests.put(message)

    async def response(self) -> Any:
        async with asyncio.timeout(WAIT_S):
            return await self._responses.get()

    async def quiet(self) -> bool:
        """Whether nothing arrives for a while."""
        await asyncio.sleep(QUIET_S)
        return self._responses.empty()

    async def close(self) -> None:
        self._call.cancel()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


def unpack(response: Any) -> dict[str, secret_pb2.Secret]:
    found = {}
    for resource in response.resources:
        secret = secret_pb2.Secret()
        resource.Unpack(secret)
        found[secret.name] = secret
    return found


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[PublishedCertificates, Any, SdsServer]]:
    certificates = PublishedCertificates()
    server = SdsServer(tmp_path / "agent" / "sds.sock", certificates)
    await server.start()
    channel = grpc.aio.insecure_channel(f"unix:{server.socket_path}")
    try:
        yield certificates, sds_pb2_grpc.SecretDiscoveryServiceStub(channel), server
    finally:
        await channel.close()
        await server.stop()


async def test_answers_once_a_certificate_exists_then_pushes_versions(
    served: tuple[PublishedCertificates, Any, SdsServer],
) -> None:
    certificates, stub, _ = served
    stream = EnvoyLikeStream(stub)
    await stream.request([DEFAULT_SECRET])
    assert await stream.quiet()  # nothing to serve yet: Envoy keeps warming
    await certificates.publish(1)
    first = await stream.response()
    secret = unpack(first)[DEFAULT_SECRET]
    assert first.version_info == "1"
    assert first.type_url == SECRET_TYPE_URL
    assert secret.tls_certificate.certificate_chain.inline_bytes == b"CHAIN 1"
    assert secret.tls_certificate.private_key.inline_bytes == b"KEY 1"
    await stream.request([DEFAULT_SECRET], nonce=first.nonce, version="1")  # ACK
    assert await stream.quiet()
    await certificates.publish(2)
    second = await stream.response()
    assert second.version_info == "2"
    assert second.nonce != first.nonce
    await stream.request([DEFAULT_SECRET], nonce=second.nonce, version="1", error="bad key")
    assert await stream.quiet()  # a NACK is not answered
    await stream.close()


async def test_serves_roots_and_only_known_names(
    served: tuple[PublishedCertificates, Any, SdsServer],
) -> None:
    certificates, stub, _ = served
    await certificates.publish(7)
    stream = EnvoyLikeStream(stub)
    await stream.request([ROOT_SECRET, "file-cert:/etc/x"])
    secrets = unpack(await stream.response())
    assert list(secrets) == [ROOT_SECRET]
    assert secrets[ROOT_SECRET].validation_context.trusted_ca.inline_bytes == b"ROOTS 7"
    response = await stub.FetchSecrets(
        discovery_pb2.DiscoveryRequest(resource_names=[DEFAULT_SECRET], type_url=SECRET_TYPE_URL)
    )
    assert list(unpack(response)) == [DEFAULT_SECRET]
    await stream.close()


async def test_socket_is_private_and_removed_on_stop(
    served: tuple[PublishedCertificates, Any, SdsServer],
) -> None:
    _, _, server = served
    path = server.socket_path
    assert stat.S_ISSOCK(path.stat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    await server.stop()
    assert not path.exists()
