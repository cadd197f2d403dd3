"""How the launcher places Mixer, picks ports, mints Citadel tokens and runs Redis."""

from __future__ import annotations

import socket
import stat
import time
from pathlib import Path

import pytest

from cli.launcher.mesh import Mesh, MeshOptions, MeshStartError
from cli.launcher.mesh_config import find_mesh_config, mixer_placement
from cli.launcher.ports import PortPicker, PortPickError, ephemeral_low
from cli.launcher.service_run import RedisRun
from cli.launcher.tokens import TokenMinter
from cli.launcher.workloads import WorkloadsFile
from services.citadel.adapters.key_files import load_token_public_key
from services.citadel.core.errors import AuthenticationError
from services.citadel.core.token import TokenVerifier
from services.citadel.settings import CitadelSettings
from shared.contracts.ca.spiffe import SpiffeId
from tests.integration.sidecar.procfs import alive

REPO = Path(__file__).resolve().parents[3]


def mesh_yaml(directory: Path, **fields: str) -> Path:
    lines = "".join(f"  {key}: {value}\n" for key, value in fields.items())
    directory.mkdir(exist_ok=True)
    (directory / "mesh.yaml").write_text(
        "apiVersion: mesh.istio.io/v1alpha1\nkind: MeshConfig\n"
        f"metadata: {{name: mesh, namespace: istio-system}}\nspec:\n{lines}"
    )
    return directory


def test_the_demo_mixer_listens_where_the_demo_meshconfig_points_sidecars() -> None:
    found = find_mesh_config(REPO / "examples" / "mesh")
    assert found.source == REPO / "examples" / "mesh" / "meshconfig.yaml"
    assert not found.spec.disable_policy_checks
    assert mixer_placement(found).grpc_port == 9091
    assert mixer_placement(found).notes == ()


def test_without_mixer_servers_mixer_takes_any_port_and_the_user_is_told(tmp_path: Path) -> None:
    placement = mixer_placement(find_mesh_config(tmp_path))
    assert placement.grpc_port == 0
    assert "no mixerCheckServer" in placement.notes[0]


def test_one_local_mixer_cannot_be_two_addresses_or_another_host(tmp_path: Path) -> None:
    two = mesh_yaml(
        tmp_path / "two",
        disablePolicyChecks="false",
        mixerCheckServer="127.0.0.1:9191",
        mixerReportServer="127.0.0.1:9192",
    )
    placement = mixer_placement(find_mesh_config(two))
    assert placement.grpc_port == 9191
    assert "differ" in placement.notes[0]
    remote = mesh_yaml(
        tmp_path / "remote", disablePolicyChecks="false", mixerCheckServer="mixer.example:9091"
    )
    placement = mixer_placement(find_mesh_config(remote))
    assert placement.grpc_port == 0
    assert "not on this machine's loopback" in placement.notes[0]


def test_picked_ports_are_distinct_below_the_ephemeral_range_and_skip_reserved() -> None:
    low = ephemeral_low()
    reserved = frozenset(range(max(1024, low - 10_000), low - 2_000))
    ports = PortPicker(reserved=reserved).pick_many(20)
    assert len(set(ports)) == 20
    assert all(low - 2_000 <= port < low for port in ports)


def test_a_port_someone_listens_on_is_never_picked() -> None:
    low = ephemeral_low()
    with socket.socket() as listener:
        for port in range(low - 1, low - 100, -1):
            try:
                listener.bind(("127.0.0.1", port))
                break
            except OSError:
                continue
        listener.listen()
        everything_else = frozenset(range(max(1024, low - 10_000), low)) - {port}
        with pytest.raises(PortPickError):
            PortPicker(reserved=everything_else).pick()


def test_tokens_are_0600_and_prove_the_workload_identity_to_citadel(tmp_path: Path) -> None:
    state_dir = tmp_path / "citadel"
    minter = TokenMinter(state_dir, trust_domain="cluster.local")
    key_file = CitadelSettings(state_dir=state_dir).token_signing_key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    token_file = tmp_path / "sidecars" / "catalog-v1" / "citadel.token"
    minter.write(token_file, namespace="shop", service_account="catalog")
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    verifier = TokenVerifier(
        public_key=load_token_public_key(key_file), trust_domain="cluster.local", max_ttl_s=3600
    )
    token = token_file.read_text()
    assert verifier.verify(token, now=time.time()) == SpiffeId("cluster.local", "shop", "catalog")
    with pytest.raises(AuthenticationError):  # single use
        verifier.verify(token, now=time.time())
    # A later launcher on the same run directory keeps the key Citadel already trusts.
    TokenMinter(state_dir, trust_domain="cluster.local").write(
        token_file, namespace="shop", service_account="ratings"
    )
    identity = verifier.verify(token_file.read_text(), now=time.time())
    assert identity.service_account == "ratings"


@pytest.mark.skipif(RedisRun.find() is None, reason="redis-server is not installed")
def test_redis_starts_on_a_picked_port_and_stops(tmp_path: Path) -> None:
    binary = RedisRun.find()
    assert binary is not None
    redis = RedisRun(binary, picker=PortPicker(), logs=tmp_path)
    redis.start(10.0)
    try:
        pid = redis.pid
        assert pid is not None
        assert redis.port < ephemeral_low()
        with socket.create_connection(("127.0.0.1", redis.port), timeout=5) as connection:
            connection.sendall(b"PING\r\n")
            assert connection.recv(16) == b"+PONG\r\n"
        assert redis.state().ports == {"redis": redis.port}
    finally:
        redis.stop()
    assert not alive(pid)
    assert redis.pid is None


def test_a_taken_mixer_port_fails_the_start_before_anything_runs(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        config = mesh_yaml(
            tmp_path / "config",
            disablePolicyChecks="false",
            mixerCheckServer=f"127.0.0.1:{port}",
            mixerReportServer=f"127.0.0.1:{port}",
        )
        mesh = Mesh(
            MeshOptions(
                config_dir=config,
                workloads=WorkloadsFile(workloads=()),
                run_dir=tmp_path / "run",
                mixer=True,
                citadel=True,
                redis=True,
            )
        )
        with pytest.raises(MeshStartError, match=f"Mixer's port {port} .*mesh.yaml.* is in use"):
            mesh.start()
    assert mesh.galley.pid is None
    assert mesh.redis is None or mesh.redis.pid is None
