"""The agent's SDS server feeding a real Envoy certificates from a real Citadel: Envoy
serves mutual TLS with the workload's SPIFFE certificate, rejects clients without one,
and picks up each renewed certificate without a restart; the agent renews with tokens
signed by its own certificate after one bootstrap token."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import pytest
from cryptography import x509

from shared.contracts.ca.client import CertificateClient
from shared.contracts.ca.csr import new_key_and_csr
from shared.contracts.ca.spiffe import SpiffeId
from shared.contracts.ca.tokens import RenewingTokens
from sidecar.agent import free_port
from sidecar.certificates import WorkloadCertificates
from sidecar.envoy_process import EnvoyCommand, EnvoySupervisor, find_envoy
from sidecar.sds import DEFAULT_SECRET, ROOT_SECRET, SdsServer

if TYPE_CHECKING:
    from tests.integration.citadel.conftest import CitadelProcess, LaunchCitadel

SLEEP = SpiffeId("cluster.local", "default", "sleep")
HTTPBIN = SpiffeId("cluster.local", "default", "httpbin")
WAIT_S = 20.0
_HCM = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_TLS = "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
_HTTP2 = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_ROUTER = "envoy.extensions.filters.http.router.v3.Router"


def sds_secret(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "sds_config": {
            "api_config_source": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "sds-grpc"}}],
            },
            "resource_api_version": "V3",
        },
    }


def typed(type_name: str, **fields: Any) -> dict[str, Any]:
    return {"@type": f"type.googleapis.com/{type_name}", **fields}


def socket_address(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def sds_cluster(sds_socket: Path) -> dict[str, Any]:
    endpoint = {"endpoint": {"address": {"pipe": {"path": str(sds_socket)}}}}
    return {
        "name": "sds-grpc",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": "sds-grpc",
            "endpoints": [{"lb_endpoints": [endpoint]}],
        },
        "typed_extension_protocol_options": {
            _HTTP2: typed(_HTTP2, explicit_http_config={"http2_protocol_options": {}})
        },
    }


def hello_filter() -> dict[str, Any]:
    route = {
        "match": {"prefix": "/"},
        "direct_response": {"status": 200, "body": {"inline_string": "hello"}},
    }
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": typed(
            _HCM,
            stat_prefix="inbound",
            route_config={"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [route]}]},
            http_filters=[{"name": "envoy.filters.http.router", "typed_config": typed(_ROUTER)}],
        ),
    }


def bootstrap(*, admin_port: int, listener_port: int, sds_socket: Path) -> dict[str, Any]:
    """An inbound mTLS listener whose certificate and roots come over SDS (as Pilot will
    configure it), answering every request with 200 ``hello``."""
    tls = typed(
        _TLS,
        require_client_certificate=True,
        common_tls_context={
            "tls_certificate_sds_secret_configs": [sds_secret(DEFAULT_SECRET)],
            "validation_context_sds_secret_config": sds_secret(ROOT_SECRET),
        },
    )
    listener = {
        "name": "inbound",
        "address": socket_address(listener_port),
        "filter_chains": [
            {
                "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": tls},
                "filters": [hello_filter()],
            }
        ],
    }
    return {
        "node": {
            "id": "sidecar~127.0.0.1~sleep.default~default.svc.cluster.local",
            "cluster": "sleep",
        },
        "admin": {"address": socket_address(admin_port)},
        "static_resources": {"clusters": [sds_cluster(sds_socket)], "listeners": [listener]},
    }


@dataclass
class Sidecar:
    """Citadel-backed certificates, the SDS server and Envoy, as the agent will run them."""

    citadel: CitadelProcess
    certificates: WorkloadCertificates
    envoy: EnvoySupervisor
    admin_port: int
    listener_port: int

    async def envoy_serial(self) -> int | None:
        """The serial of the certificate Envoy's listener holds (admin /certs)."""
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(f"http://127.0.0.1:{self.admin_port}/certs")
        for entry in response.json().get("certificates", []):
            for chain in entry.get("cert_chain", []):
                return int(chain["serial_number"], 16)
        return None

    async def wait_for_envoy(self, predicate: Callable[[int | None], bool]) -> int | None:
        """Poll Envoy's certificate serial until ``predicate`` holds; return it."""
        deadline = time.monotonic() + WAIT_S
        while not predicate(held := await self.envoy_serial()):
            assert time.monotonic() < deadline, f"envoy still holds {held}"
            await asyncio.sleep(0.05)
        return held

    async def client_context(self, identity: SpiffeId) -> ssl.SSLContext:
        """A TLS client context with a Citadel certificate for ``identity``."""
        key_pem, csr_pem = new_key_and_csr(identity)
        issued = await self.citadel.client(
            identity.namespace, identity.service_account
        ).create_certificate(csr_pem)
        directory = self.citadel.workdir / f"client-{identity.service_account}"
        directory.mkdir(exist_ok=True)
        (directory / "chain.pem").write_text(issued.chain_pem)
        (directory / "key.pem").write_bytes(key_pem)
        context = ssl.create_default_context(cadata=issued.roots_pem)
        context.check_hostname = False  # SPIFFE identities are URIs: checked below by SAN
        context.load_cert_chain(directory / "chain.pem", directory / "key.pem")
        return context


def handshake(port: int, context: ssl.SSLContext) -> tuple[x509.Certificate, bytes]:
    """Connect, send one request; the server's certificate and the response."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5.0) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        tls.sendall(b"GET / HTTP/1.1\r\nHost: sleep\r\nConnection: close\r\n\r\n")
        response = b""
        while chunk := tls.recv(4096):
            response += chunk
    assert der is not None
    return x509.load_der_x509_certificate(der), response


class StartSidecar(Protocol):
    """The ``start_sidecar`` fixture's signature."""

    async def __call__(self, *, validity_s: int, rotation_fraction: float = 0.5) -> Sidecar: ...


@pytest.fixture
async def start_sidecar(
    launch_citadel: LaunchCitadel, tmp_path: Path
) -> AsyncIterator[StartSidecar]:
    """Citadel plus the agent's pieces wired as the agent will: one bootstrap token from
    the launcher, then renewal tokens signed with the current certificate."""
    started: list[Any] = []

    async def start(*, validity_s: int, rotation_fraction: float = 0.5) -> Sidecar:
        citadel = launch_citadel()
        bootstrap_tokens = [citadel.token(SLEEP.namespace, SLEEP.service_account)]

        async def launcher_token() -> str:
            if not bootstrap_tokens:
                raise RuntimeError("the launcher's single bootstrap token was already used")
            return bootstrap_tokens.pop()

        def credentials() -> tuple[bytes, str] | None:
            current = certificates.current
            return (current.key_pem, current.chain_pem) if current else None

        tokens = RenewingTokens(bootstrap=launcher_token, credentials=credentials, margin_s=0.5)
        client = CertificateClient(citadel.target, tokens, max_reconnect_backoff_s=0.5)
        citadel.clients.append(client)
        certificates = WorkloadCertificates(
            identity=SLEEP,
            signer=client,
            validity_s=validity_s,
            rotation_fraction=rotation_fraction,
            root_poll_s=0.1,
            initial_backoff_s=0.1,
            max_backoff_s=0.5,
        )
        sds = SdsServer(tmp_path / "run" / "sds.sock", certificates)
        admin_port, listener_port = free_port(), free_port()
        config = tmp_path / "envoy.json"
        config.write_text(
            json.dumps(
                bootstrap(
                    admin_port=admin_port, listener_port=listener_port, sds_socket=sds.socket_path
                )
            )
        )
        envoy = EnvoySupervisor(
            EnvoyCommand(binary=find_envoy(), config_path=config, drain_time_s=0, concurrency=1),
            admin_port=admin_port,
            log_path=tmp_path / "envoy.log",
        )
        for component in (certificates, sds, envoy):
            await component.start()
            started.append(component)
        return Sidecar(citadel, certificates, envoy, admin_port, listener_port)

    yield start
    for component in reversed(started):
        await component.stop()


async def test_envoy_serves_mutual_tls_with_the_workload_certificate(
    start_sidecar: StartSidecar,
) -> None:
    sidecar = await start_sidecar(validity_s=3600)
    current = await asyncio.wait_for(sidecar.certificates.wait_for(0), WAIT_S)
    await sidecar.wait_for_envoy(lambda serial: serial is not None)
    context = await sidecar.client_context(HTTPBIN)
    server_cert, response = await asyncio.to_thread(handshake, sidecar.listener_port, context)
    san = server_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [str(SLEEP)]
    assert response.startswith(b"HTTP/1.1 200") and response.endswith(b"hello")
    no_client_cert = ssl.create_default_context(cadata=current.roots_pem)
    no_client_cert.check_hostname = False
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await asyncio.to_thread(handshake, sidecar.listener_port, no_client_cert)


async def test_envoy_picks_up_renewed_certificates(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(validity_s=3)
    first = await asyncio.wait_for(sidecar.certificates.wait_for(0), WAIT_S)
    await sidecar.wait_for_envoy(lambda serial: serial not in (None, first.serial))
    context = await sidecar.client_context(HTTPBIN)
    server_cert, response = await asyncio.to_thread(handshake, sidecar.listener_port, context)
    assert server_cert.serial_number != first.serial  # renewed in place
    assert response.endswith(b"hello")
    assert sidecar.certificates.status()["renewals"] >= 2  # on renewal tokens alone
    assert sidecar.envoy.restarts == 0


async def test_traffic_continues_while_citadel_is_down_and_the_agent_recovers(
    start_sidecar: StartSidecar,
) -> None:
    sidecar = await start_sidecar(validity_s=30, rotation_fraction=0.04)  # renews after ~1 s
    first = await asyncio.wait_for(sidecar.certificates.wait_for(0), WAIT_S)
    await sidecar.wait_for_envoy(lambda serial: serial == first.serial)
    context = await sidecar.client_context(HTTPBIN)
    await asyncio.to_thread(sidecar.citadel.stop)
    deadline = time.monotonic() + WAIT_S
    while sidecar.certificates.status()["failures"] < 2:
        assert time.monotonic() < deadline, sidecar.certificates.status()
        await asyncio.sleep(0.1)
    server_cert, response = await asyncio.to_thread(handshake, sidecar.listener_port, context)
    assert server_cert.serial_number == first.serial  # the current certificate is kept
    assert response.endswith(b"hello")
    await asyncio.to_thread(sidecar.citadel.start, reuse_ports=True)
    renewed = await sidecar.wait_for_envoy(lambda serial: serial not in (None, first.serial))
    assert renewed == sidecar.certificates.current.serial  # type: ignore[union-attr]
