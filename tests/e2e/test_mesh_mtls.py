"""Mutual TLS end to end: real Citadel, real agents, real Envoys, real TLS on the wire.

storefront's sidecar calls catalog's (auto mTLS: catalog's endpoint is labelled
``security.istio.io/tlsMode: istio``); shop's PeerAuthentication is STRICT unless a test
changes it. Certificates live 20 s, so every test runs while agents renew (see
:mod:`tests.e2e.mtls_mesh`). The last tests stop Citadel and rotate its root.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from bench.mtls_mesh import start_shop_app
from sidecar.agent import free_port
from tests.e2e.mtls_mesh import (
    BILLING,
    CATALOG,
    CERT_VALIDITY_S,
    ROOT_ROTATION_GRACE_S,
    Impostor,
    Load,
    MtlsMesh,
    client_context,
    forged_leaf,
    peer_authentication,
    start_agent,
    start_control_plane,
    tls_request,
    wait_for,
)
from tests.e2e.test_mesh_mixer import unassigned_ports

pytestmark = pytest.mark.slow

RATE = 20.0  # requests per second under load
CATALOG_CLUSTER = f"cluster.outbound|8080||{CATALOG}"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MtlsMesh]:
    """Galley, Pilot, Citadel, the catalog app, both agents and the impostor."""
    root = tmp_path_factory.mktemp("mtls-mesh")
    catalog_port, billing_port = unassigned_ports(2)
    mesh = start_control_plane(root, {"catalog": catalog_port, "billing": billing_port}, "STRICT")
    app = None
    impostor = None
    try:
        mesh.citadel.start()
        app_port = free_port()
        app = start_shop_app(root, "catalog", app_port)
        start_agent(
            mesh, "catalog", root / "agents", inbound=f"{catalog_port}:{app_port}:{CATALOG}"
        )
        start_agent(mesh, "storefront", root / "agents")
        key_pem, issued = mesh.citadel.issue("impostor")
        context = client_context(root / "impostor", key_pem, issued.chain_pem, issued.roots_pem)
        context.verify_mode = ssl.CERT_REQUIRED
        impostor = Impostor(billing_port, _server(context, root / "impostor"))
        mesh.wait_in_sync()
        wait_for(lambda: mesh.get().status_code == 200, "catalog never answered")
        yield mesh
    finally:
        for agent in mesh.agents.values():
            agent.process.stop()
        if app is not None:
            app.stop()
        if impostor is not None:
            impostor.close()
        mesh.citadel.stop()
        mesh.control.stop()


def _server(client: ssl.SSLContext, directory: Path) -> ssl.SSLContext:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(directory / "chain.pem", directory / "key.pem")
    server.load_verify_locations(cadata=client.get_ca_certs(binary_form=True)[0])
    server.verify_mode = ssl.CERT_REQUIRED
    return server


def _listener_stat(mesh: MtlsMesh, name: str) -> int:
    return mesh.catalog.stat(f"listener.127.0.0.1_{mesh.ports['catalog']}.ssl.{name}")


def _plaintext(mesh: MtlsMesh) -> httpx.Response:
    url = f"http://127.0.0.1:{mesh.ports['catalog']}/items"
    return httpx.get(url, headers={"host": CATALOG}, timeout=5)


def test_traffic_between_sidecars_is_mutual_tls(mesh: MtlsMesh) -> None:
    for _ in range(5):
        response = mesh.get()
        assert response.status_code == 200 and response.json()["service"] == "catalog"
    connections = mesh.storefront.stat(f"{CATALOG_CLUSTER}.upstream_cx_total")
    assert connections >= 1
    assert mesh.storefront.stat(f"{CATALOG_CLUSTER}.ssl.handshake") == connections  # all TLS
    assert _listener_stat(mesh, "handshake") >= connections
    assert _listener_stat(mesh, "no_certificate") == 0  # storefront presented its own


def test_strict_rejects_plaintext_and_permissive_accepts_it(mesh: MtlsMesh) -> None:
    with pytest.raises(httpx.HTTPError):
        _plaintext(mesh)
    mesh.apply("peer.yaml", peer_authentication("PERMISSIVE"))
    try:
        wait_for(lambda: _ok(mesh), "PERMISSIVE never accepted plaintext")
        assert mesh.get().status_code == 200  # sidecars still use mTLS
    finally:
        mesh.apply("peer.yaml", peer_authentication("STRICT"))
    wait_for(lambda: not _ok(mesh), "STRICT never refused plaintext again")


def _ok(mesh: MtlsMesh) -> bool:
    try:
        return _plaintext(mesh).status_code == 200
    except httpx.HTTPError:
        return False


def test_foreign_ca_wrong_trust_domain_and_wrong_identity_are_rejected(
    mesh: MtlsMesh, tmp_path: Path
) -> None:
    key_pem, issued = mesh.citadel.issue("tester")
    roots = issued.roots_pem
    genuine = client_context(tmp_path / "genuine", key_pem, issued.chain_pem, roots)
    server_cert, answer = tls_request(mesh.ports["catalog"], genuine)
    assert answer.startswith(b"HTTP/1.1 200") and b'"catalog"' in answer
    san = server_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://cluster.local/ns/shop/sa/catalog"
    ]
    root, root_key = mesh.citadel.signing_root()
    for name, issuer, issuer_key, uri, stat in (
        (
            "foreign",
            None,
            None,
            "spiffe://cluster.local/ns/shop/sa/storefront",
            "fail_verify_error",
        ),
        ("evil", root, root_key, "spiffe://evil.example/ns/shop/sa/storefront", "fail_verify_san"),
    ):
        before = _listener_stat(mesh, stat)
        forged_key, forged_chain = forged_leaf(issuer, issuer_key, uri)
        context = client_context(tmp_path / name, forged_key, forged_chain, roots)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            tls_request(mesh.ports["catalog"], context)
        wait_for(
            lambda stat=stat, before=before: _listener_stat(mesh, stat) > before,
            f"{stat} never counted {name}",
        )
    # storefront checks the server: billing's endpoint presents impostor's certificate.
    assert mesh.get(BILLING).status_code == 503
    assert mesh.storefront.stat(f"cluster.outbound|8080||{BILLING}.ssl.fail_verify_san") > 0


def _errors(mesh: MtlsMesh) -> dict[str, int]:
    """Envoy's non-zero TLS and connection-error counters of both sidecars (diagnostics)."""
    words = ("ssl.", "destroy", "reset", "fail", "error", "timeout")
    found = {}
    for agent in mesh.agents.values():
        for line in agent.admin("/stats").text.splitlines():
            key, _, value = line.partition(": ")
            if value.isdigit() and int(value) and any(word in key for word in words):
                found[f"{agent.name} {key}"] = int(value)
    return found


def _roll(mesh: MtlsMesh) -> dict[str, int | None]:
    return {name: agent.serial() for name, agent in mesh.agents.items()}


def test_certificates_rotate_under_load_without_failed_requests(mesh: MtlsMesh) -> None:
    first = _roll(mesh)
    with Load(mesh, RATE) as load:
        wait_for(
            lambda: all(serial not in (None, first[name]) for name, serial in _roll(mesh).items()),
            "both sidecars never rotated",
            timeout=CERT_VALIDITY_S * 1.5,
        )
        outcomes = load.stop()
    assert set(outcomes) == {"200"}, (outcomes, load.failures, _errors(mesh))
    assert outcomes["200"] > RATE * 2
    assert mesh.catalog.process.running() and mesh.storefront.process.running()


def test_traffic_continues_while_citadel_is_down_and_agents_recover(mesh: MtlsMesh) -> None:
    fresh = mesh.catalog.serial()
    wait_for(lambda: mesh.catalog.serial() != fresh, "catalog never renewed")
    failures = {name: agent.log().count("could not renew") for name, agent in mesh.agents.items()}
    with Load(mesh, RATE) as load:
        mesh.citadel.stop()
        held = _roll(mesh)
        try:
            wait_for(
                lambda: all(
                    agent.log().count("could not renew") > failures[name]
                    for name, agent in mesh.agents.items()
                ),
                "the agents never noticed Citadel was down",
                timeout=CERT_VALIDITY_S,
            )
            assert _roll(mesh) == held  # the current certificates are kept
        finally:
            mesh.citadel.start()
        wait_for(
            lambda: all(serial != held[name] for name, serial in _roll(mesh).items()),
            "the agents never renewed after Citadel came back",
        )
        outcomes = load.stop()
    assert set(outcomes) == {"200"}, (outcomes, load.failures, _errors(mesh))


def _tls_errors(mesh: MtlsMesh) -> dict[str, int]:
    """Failed handshakes between the sidecars: storefront's side, then catalog's."""
    return {
        "storefront connection_error": mesh.storefront.stat(
            f"{CATALOG_CLUSTER}.ssl.connection_error"
        ),
        "storefront fail_verify_error": mesh.storefront.stat(
            f"{CATALOG_CLUSTER}.ssl.fail_verify_error"
        ),
        "catalog connection_error": _listener_stat(mesh, "connection_error"),
        "catalog fail_verify_error": _listener_stat(mesh, "fail_verify_error"),
    }


def test_root_rotation_with_overlap_loses_no_requests(mesh: MtlsMesh, tmp_path: Path) -> None:
    citadel = mesh.citadel
    old_root, _ = citadel.signing_root()
    tls_errors = _tls_errors(mesh)
    with Load(mesh, RATE) as load:
        citadel.stop()  # rotation due at once: the next root is published on start
        citadel.start(ROOT_ROTATION_FRACTION="0.9999999")
        wait_for(
            lambda: citadel.debug_root()["rotation"]["phase"] == "next-root-published",
            "Citadel never published a next root",
        )
        citadel.stop()
        time.sleep(ROOT_ROTATION_GRACE_S)  # down longer than the grace: agents lacked the root
        citadel.start()  # back to the default fraction: the next root signs after the grace
        wait_for(lambda: citadel.signing_root()[0] != old_root, "the next root never signed")
        new_root, _ = citadel.signing_root()
        key_pem, issued = citadel.issue("tester")  # signed by the new root
        context = client_context(tmp_path, key_pem, issued.chain_pem, issued.roots_pem)

        def catalog_signed_by_new_root() -> bool:
            try:
                server_cert, _ = tls_request(mesh.ports["catalog"], context)
            except (ssl.SSLError, ConnectionError):
                return False  # catalog does not trust the new root yet
            return _signed_by(server_cert, new_root)

        wait_for(catalog_signed_by_new_root, "catalog never got a leaf of the new root")
        renewed = _roll(mesh)
        wait_for(
            lambda: mesh.storefront.serial() != renewed["storefront"],
            "storefront never renewed under the new root",
        )
        outcomes = load.stop()
    assert set(outcomes) == {"200"}, (outcomes, load.failures, _errors(mesh))
    # Both roots were trusted everywhere before the new one signed: not one handshake failed
    # (the router's connect-failure retries would hide such failures from the load).
    assert _tls_errors(mesh) == tls_errors, (tls_errors, _errors(mesh))
    trusted = citadel.debug_root()["trusted_roots"]
    assert len(trusted) == 2  # the old root is still trusted while its leaves may live


def _signed_by(cert: x509.Certificate, root: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(root)
    except (ValueError, InvalidSignature):
        return False
    return True
