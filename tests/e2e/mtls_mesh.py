"""A small mesh with Citadel and mutual TLS for end-to-end tests, and what the tests need.

:class:`MtlsMesh` runs Galley and Pilot (the launcher's :class:`~cli.launcher.mesh.Mesh`
with no workloads), a restartable Citadel (:class:`MeshCitadel`, processes started by
:mod:`bench.mtls_mesh`), the catalog app, and two
agents with workload identities: ``storefront-v1`` (service account ``storefront``, an
outbound listener only) and ``catalog-v1`` (service account ``catalog``, serving catalog's
endpoint port). Certificates live :data:`CERT_VALIDITY_S` seconds, so agents renew about
every ten seconds. An impostor TLS server (:class:`Impostor`) plays the endpoint of
service ``billing`` (expected identity ``billing``) with a genuine Citadel certificate for
``impostor``. Ports written into config come from
:func:`tests.e2e.test_mesh_mixer.unassigned_ports`.

:class:`Load` sends requests at a fixed rate (open loop: a request is started every
``1/rate`` s whether or not the previous one finished) through storefront's sidecar and
records every outcome, and what each failed request got (:attr:`Load.failures`). Helpers
read Envoy stats and certificates over its admin API and make TLS clients with
certificates from Citadel, from a foreign CA, or signed by the mesh's own root with another
trust domain.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import socket
import ssl
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.mtls_mesh import TRUST_DOMAIN, CitadelRun, agent_settings, control_plane
from bench.mtls_mesh import start_agent as start_bench_agent
from cli.launcher.mesh import Mesh
from cli.launcher.pilot_view import fetch_sync
from shared.contracts.ca.client import CertificateClient, IssuedCertificate
from shared.contracts.ca.csr import new_key_and_csr
from shared.contracts.ca.spiffe import SpiffeId
from shared.process import ServiceProcess

CATALOG = "catalog.shop.svc.cluster.local"
BILLING = "billing.shop.svc.cluster.local"

CERT_VALIDITY_S = 20
ROOT_ROTATION_GRACE_S = 2.0
WAIT_S = 30.0
START_TIMEOUT_S = 60.0
_HTTP_TIMEOUT_S = 5.0
_FAILURE_CHARS = 600


def mesh_yaml(ports: dict[str, int], mode: str) -> dict[str, str]:
    """The config files: MeshConfig (auto mTLS), catalog and billing, shop's PeerAuthentication."""
    entries = "---\n".join(
        "apiVersion: networking.istio.io/v1alpha3\nkind: ServiceEntry\n"
        f"metadata: {{name: {name}, namespace: shop}}\n"
        f"spec:\n  hosts: [{name}.shop.svc.cluster.local]\n"
        "  location: MESH_INTERNAL\n  resolution: STATIC\n"
        "  ports: [{number: 8080, name: http, protocol: HTTP}]\n"
        f"  endpoints:\n    - address: 127.0.0.1\n      ports: {{http: {ports[name]}}}\n"
        f"      labels: {{app: {name}, security.istio.io/tlsMode: istio}}\n"
        f"      serviceAccount: {name}\n"
        for name in ("catalog", "billing")
    )
    return {
        "mesh.yaml": (
            "apiVersion: mesh.istio.io/v1alpha1\nkind: MeshConfig\n"
            "metadata: {name: mesh, namespace: istio-system}\n"
            f"spec: {{trustDomain: {TRUST_DOMAIN}, enableAutoMtls: true}}\n"
        ),
        "services.yaml": entries,
        "peer.yaml": peer_authentication(mode),
    }


def peer_authentication(mode: str) -> str:
    """shop's namespace-wide PeerAuthentication."""
    return (
        "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\n"
        f"metadata: {{name: default, namespace: shop}}\nspec: {{mtls: {{mode: {mode}}}}}\n"
    )


class MeshCitadel(CitadelRun):
    """Citadel with a short root-rotation grace, and what tests ask of it."""

    def start(self, **settings: str) -> None:
        """Start with a :data:`ROOT_ROTATION_GRACE_S` rotation grace and 0.2 s root checks
        (plus ``settings``)."""
        super().start(
            ROOT_ROTATION_GRACE_S=str(ROOT_ROTATION_GRACE_S),
            ROOT_CHECK_INTERVAL_S="0.2",
            **settings,
        )

    def issue(self, service_account: str) -> tuple[bytes, IssuedCertificate]:
        """A key and a Citadel certificate for ``shop/<service_account>``."""
        key_pem, csr_pem = new_key_and_csr(SpiffeId(TRUST_DOMAIN, "shop", service_account))

        async def sign() -> IssuedCertificate:
            async def token() -> str:
                return self.token("shop", service_account)

            async with CertificateClient(self.target, token) as client:
                return await client.create_certificate(csr_pem, 600)

        return key_pem, asyncio.run(sign())

    def signing_root(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """The root that signs now, with its key (read from Citadel's state, as root can)."""
        (index,) = self.state_dir.rglob("roots.json")
        fingerprint = json.loads(index.read_text())["signing"]
        directory = index.parent / "roots"
        cert = x509.load_pem_x509_certificate((directory / f"{fingerprint}.crt").read_bytes())
        key = serialization.load_pem_private_key(
            (directory / f"{fingerprint}.key").read_bytes(), password=None
        )
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return cert, key


@dataclass
class Agent:
    """One ``python -m sidecar`` with an identity."""

    name: str
    process: ServiceProcess
    ports: dict[str, int]

    def admin(self, path: str) -> httpx.Response:
        """GET on Envoy's admin API."""
        url = f"http://127.0.0.1:{self.ports['admin']}{path}"
        return httpx.get(url, timeout=_HTTP_TIMEOUT_S)

    def stat(self, name: str) -> int:
        """One counter of Envoy's (0 when Envoy has not created it yet)."""
        for line in self.admin(f"/stats?filter=^{_regex(name)}$").text.splitlines():
            key, _, value = line.partition(": ")
            if key == name:
                return int(value)
        return 0

    def serial(self) -> int | None:
        """The serial of the workload certificate Envoy holds."""
        for entry in self.admin("/certs").json().get("certificates", []):
            for chain in entry.get("cert_chain", []):
                return int(chain["serial_number"], 16)
        return None

    def log(self) -> str:
        """What the agent logged."""
        return self.process.log_path.read_text(errors="replace")


def _regex(name: str) -> str:
    return "".join(f"\\{c}" if c in ".|[]()+*?^$" else c for c in name)


@dataclass
class MtlsMesh:
    """The running mesh (module docstring)."""

    control: Mesh
    citadel: MeshCitadel
    config_dir: Path
    ports: dict[str, int]
    agents: dict[str, Agent] = field(default_factory=dict)

    @property
    def storefront(self) -> Agent:
        return self.agents["storefront"]

    @property
    def catalog(self) -> Agent:
        return self.agents["catalog"]

    def get(self, host: str = CATALOG) -> httpx.Response:
        """One GET through storefront's sidecar."""
        url = f"http://127.0.0.1:{self.storefront.ports['outbound']}/items"
        return httpx.get(url, headers={"host": host}, timeout=_HTTP_TIMEOUT_S)

    def apply(self, name: str, text: str) -> None:
        """Replace a config file and wait until both proxies ACKed the new version."""
        before = self.version()
        partial = self.config_dir / f".{name}.partial"
        partial.write_text(text)
        partial.replace(self.config_dir / name)
        wait_for(lambda: self.version() != before, f"Pilot never took {name}")
        self.wait_in_sync()

    def version(self) -> str | None:
        response = httpx.get(self.control.pilot.url("/debug/syncz"), timeout=_HTTP_TIMEOUT_S)
        version = response.json().get("version")
        return None if version is None else str(version)

    def wait_in_sync(self) -> None:
        """Wait until Pilot sees both proxies connected and in sync."""
        nodes = [f"sidecar~127.0.0.1~{name}-v1.shop~shop.svc.cluster.local" for name in self.agents]

        def synced() -> bool:
            sync = fetch_sync(self.control.pilot.url("/debug/syncz"))
            return all(node in sync and sync[node].in_sync for node in nodes)

        wait_for(synced, "the proxies never synced")


def start_agent(mesh: MtlsMesh, name: str, run: Path, *, inbound: str = "") -> Agent:
    """Start the agent of ``<name>-v1`` (service account ``name``) with its own token."""
    settings = agent_settings(
        workload=f"{name}-v1",
        namespace="shop",
        service_account=name,
        pilot_grpc_port=mesh.control.pilot.ports["grpc"],
        citadel=mesh.citadel,
        run_dir=run / name,
        inbound=inbound,
        extra={
            "LABELS": f"app={name},version=v1",
            "CERT_VALIDITY_S": str(CERT_VALIDITY_S),
            "CERT_ROOT_POLL_S": "0.5",
            "CERT_MAX_BACKOFF_S": "1",
        },
    )
    process, ports = start_bench_agent(settings)
    agent = Agent(name, process, ports)
    mesh.agents[name] = agent
    return agent


def start_control_plane(root: Path, ports: dict[str, int], mode: str) -> MtlsMesh:
    """Galley and Pilot on ``root`` (config under ``root/config``), Citadel not started."""
    control = control_plane(
        root,
        mesh_yaml(ports, mode),
        {
            "SPLITMESH_GALLEY_DEBOUNCE_QUIET_S": "0.05",
            "SPLITMESH_PILOT_DEBOUNCE_QUIET_S": "0.05",
            "SPLITMESH_PILOT_DEBOUNCE_MAX_S": "0.5",
        },
    )
    citadel = MeshCitadel(root / "citadel")
    return MtlsMesh(control=control, citadel=citadel, config_dir=root / "config", ports=ports)


def wait_for(check: Any, message: str, timeout: float = WAIT_S) -> None:
    """Poll ``check`` until it holds; raise AssertionError with ``message`` on timeout."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{message} (after {timeout}s)"
        time.sleep(0.05)


class Load:
    """Requests to catalog through storefront's sidecar at ``rate`` per second (open loop)."""

    def __init__(self, mesh: MtlsMesh, rate: float) -> None:
        self._mesh = mesh
        self._interval = 1 / rate
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=16)
        self._results: list[Future[str]] = []
        self.failures: list[str] = []  # "<UTC time sent> <status, headers, body | error>"
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> Counter[str]:
        """Stop sending, wait for answers; the outcomes (``"200"``, ``"503"``, errors)."""
        self._stop.set()
        self._thread.join()
        self._pool.shutdown(wait=True)
        return self.outcomes()

    def outcomes(self) -> Counter[str]:
        """The outcomes of the requests answered so far."""
        return Counter(f.result() for f in list(self._results) if f.done())

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._results.append(self._pool.submit(self._one))
            next_at += self._interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _one(self) -> str:
        started = time.time()
        try:
            response = self._mesh.get()
        except httpx.HTTPError as exc:
            self._failed(started, f"{type(exc).__name__}: {exc!r}")
            return type(exc).__name__
        if response.status_code != 200:
            self._failed(
                started, f"{response.status_code} {dict(response.headers)} {response.text!r}"
            )
        return str(response.status_code)

    def _failed(self, started: float, what: str) -> None:
        when = datetime.datetime.fromtimestamp(started, datetime.UTC).strftime("%H:%M:%S.%f")
        self.failures.append(f"{when} {what}"[:_FAILURE_CHARS])


def tls_request(port: int, context: ssl.SSLContext) -> tuple[x509.Certificate, bytes]:
    """A TLS connection to ``port``: the server's certificate and the HTTP answer."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=_HTTP_TIMEOUT_S) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        tls.sendall(f"GET /items HTTP/1.1\r\nHost: {CATALOG}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    assert der is not None
    return x509.load_der_x509_certificate(der), answer


def client_context(
    directory: Path, key_pem: bytes, chain_pem: str, roots_pem: str
) -> ssl.SSLContext:
    """A client context presenting ``chain_pem`` and trusting ``roots_pem``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "chain.pem").write_text(chain_pem)
    (directory / "key.pem").write_bytes(key_pem)
    context = ssl.create_default_context(cadata=roots_pem)
    context.check_hostname = False  # SPIFFE identities are URIs, not host names
    context.load_cert_chain(directory / "chain.pem", directory / "key.pem")
    return context


def forged_leaf(
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey | None,
    uri: str,
) -> tuple[bytes, str]:
    """A client key and leaf for ``uri``, signed by ``issuer`` (None: a fresh foreign CA)."""
    if issuer is None or issuer_key is None:
        issuer_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "elsewhere")])
        issuer = _certificate(name, name, issuer_key.public_key(), issuer_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _certificate(
        x509.Name([]), issuer.subject, key.public_key(), issuer_key, ca=False, uri=uri
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, leaf.public_bytes(serialization.Encoding.PEM).decode()


def _certificate(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    uri: str = "",
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if uri:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=True
        )
    return builder.sign(signer, hashes.SHA256())


class Impostor:
    """A TLS server answering 200 with a genuine mesh certificate for the wrong identity."""

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        self._sock = socket.create_server(("127.0.0.1", port))
        self._context = context
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._sock.close()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(raw,), daemon=True).start()

    def _answer(self, raw: socket.socket) -> None:
        try:
            with self._context.wrap_socket(raw, server_side=True) as tls:
                tls.recv(65536)
                tls.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nimpostor")
        except OSError:
            raw.close()
