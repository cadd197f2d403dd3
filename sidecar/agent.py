"""The agent's composition root: settings in, a host of started-in-order components out.

:func:`build_agent` resolves the ports (0 picks a free port once, so a restarted Envoy
binds the same ones), the run directory and the workload identity; nothing is written or
spawned until ``agent.host.start()``. Start order: with ``citadel_address`` first the
workload certificates (:class:`~sidecar.certificates.WorkloadCertificates`: a local key,
a CSR to Citadel through :class:`~shared.contracts.ca.client.CertificateClient`; start
returns at once, Citadel may still be down) and the SDS server on
``<run_dir>/sds.sock``; then the bootstrap file (``<run_dir>/envoy-bootstrap.json``,
with the ``sds-grpc`` cluster when there is an identity), Envoy (started and supervised,
live before start returns; its TLS listeners warm until SDS has a certificate), then the
ports file (``{"admin": N, "outbound": M}``) when asked. Stop goes in reverse: the ports
file is removed, Envoy is drained and stopped, the bootstrap removed (and the run
directory too when the agent made it), SDS stopped, renewal stopped, the Citadel channel
closed.

Tokens: the first CSR carries the launcher's single-use token, read from
``citadel_token_file`` when it is needed (so a launcher may replace it); later ones a
renewal token signed with the current certificate
(:class:`~shared.contracts.ca.tokens.RenewingTokens`).

Errors: :class:`~sidecar.envoy_process.EnvoyNotFoundError` from :func:`build_agent` when
there is no Envoy binary; Envoy that cannot start makes ``host.start()`` raise
:class:`~shared.lifecycle.StartupError`.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shared.contracts.ca.client import CertificateClient
from shared.contracts.ca.tokens import Credentials, RenewingTokens
from shared.lifecycle import Component, ComponentHost
from shared.ports_file import PortsFile
from sidecar.bootstrap import build_bootstrap, write_bootstrap
from sidecar.certificates import WorkloadCertificates
from sidecar.envoy_process import EnvoyCommand, EnvoySupervisor, find_envoy
from sidecar.node import WorkloadIdentity
from sidecar.sds import SdsServer
from sidecar.settings import SidecarSettings

BOOTSTRAP_FILE = "envoy-bootstrap.json"
ENVOY_LOG_FILE = "envoy.log"
SDS_SOCKET = "sds.sock"
_RENEWAL_MARGIN_S = 30.0  # a renewal token needs this much life left on the certificate
_INITIAL_BACKOFF_S = 0.5


@dataclass(frozen=True, slots=True)
class AgentPorts:
    """The ports the agent's Envoy uses: admin, and outbound (None for a gateway)."""

    admin: int
    outbound: int | None

    def as_dict(self) -> dict[str, int]:
        """The ports-file form."""
        ports = {"admin": self.admin}
        if self.outbound is not None:
            ports["outbound"] = self.outbound
        return ports


@dataclass(frozen=True)
class Agent:
    """The wired agent. ``host`` owns the life of every component."""

    settings: SidecarSettings
    identity: WorkloadIdentity
    ports: AgentPorts
    run_dir: Path
    envoy: EnvoySupervisor
    host: ComponentHost
    certificates: WorkloadCertificates | None = None  # None without mutual TLS


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host`` (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def build_agent(settings: SidecarSettings) -> Agent:
    """Wire the agent from validated ``settings``; see the module docstring."""
    identity = settings.identity()
    binary = find_envoy(settings.envoy_binary)
    sidecar = identity.proxy_type == "sidecar"
    ports = AgentPorts(
        admin=settings.admin_port or free_port(),
        outbound=(settings.outbound_port or free_port()) if sidecar else None,
    )
    owned = settings.run_dir is None
    run_dir = settings.run_dir or Path(tempfile.gettempdir()) / (
        f"splitmesh-sidecar-{identity.name}.{identity.namespace}-{os.getpid()}"
    )
    pilot_host, pilot_port = settings.pilot()
    security: list[Component] = []
    certificates: WorkloadCertificates | None = None
    sds: SdsServer | None = None
    if settings.citadel_address is not None:
        client, certificates = _workload_certificates(settings)
        sds = SdsServer(run_dir / SDS_SOCKET, certificates)
        security = [_ClosingClient(client), certificates, sds]
    bootstrap = _BootstrapFile(
        run_dir / BOOTSTRAP_FILE,
        build_bootstrap(
            identity,
            pilot_host=pilot_host,
            pilot_port=pilot_port,
            admin_port=ports.admin,
            outbound_port=ports.outbound,
            delta=settings.delta_xds,
            sds_socket=sds.socket_path if sds is not None else None,
        ),
        remove_dir=owned,
    )
    envoy = EnvoySupervisor(
        EnvoyCommand(
            binary=binary,
            config_path=bootstrap.path,
            log_level=settings.envoy_log_level,
            drain_time_s=settings.drain_time_s,
            listener_drain_time_s=settings.listener_drain_time_s,
            concurrency=settings.envoy_concurrency,
        ),
        admin_port=ports.admin,
        log_path=run_dir / ENVOY_LOG_FILE,
        ready_timeout_s=settings.ready_timeout_s,
        backoff_s=settings.restart_backoff_s,
        backoff_max_s=settings.restart_backoff_max_s,
        stop_grace_s=settings.stop_grace_s,
    )
    components: list[Component] = [*security, bootstrap, envoy]
    if settings.ports_file is not None:
        components.append(PortsFile(settings.ports_file, ports.as_dict()))
    return Agent(
        settings=settings,
        identity=identity,
        ports=ports,
        run_dir=run_dir,
        envoy=envoy,
        host=ComponentHost(components, name=f"sidecar {identity.node_id()}"),
        certificates=certificates,
    )


def _workload_certificates(
    settings: SidecarSettings,
) -> tuple[CertificateClient, WorkloadCertificates]:
    """Citadel's client and the certificates it keeps renewed (settings have a Citadel)."""
    assert settings.citadel_address is not None and settings.citadel_token_file is not None
    token_file = settings.citadel_token_file

    async def launcher_token() -> str:
        token = token_file.read_text().strip()
        if not token:
            raise ValueError(f"the token file {token_file} is empty")
        return token

    def credentials() -> Credentials | None:
        current = certificates.current
        return (current.key_pem, current.chain_pem) if current is not None else None

    validity = settings.cert_validity_s
    margin = min(_RENEWAL_MARGIN_S, validity / 10) if validity else _RENEWAL_MARGIN_S
    tokens = RenewingTokens(bootstrap=launcher_token, credentials=credentials, margin_s=margin)
    client = CertificateClient(
        settings.citadel_address,
        tokens,
        max_reconnect_backoff_s=min(5.0, settings.cert_max_backoff_s),
    )
    certificates = WorkloadCertificates(
        identity=settings.spiffe_id(),
        signer=client,
        validity_s=validity,
        root_poll_s=settings.cert_root_poll_s,
        initial_backoff_s=min(_INITIAL_BACKOFF_S, settings.cert_max_backoff_s),
        max_backoff_s=settings.cert_max_backoff_s,
    )
    return client, certificates


class _ClosingClient:
    """Closes Citadel's channel at stop (the first component, so the last one stopped)."""

    def __init__(self, client: CertificateClient) -> None:
        self._client = client

    @property
    def name(self) -> str:
        return f"citadel client {self._client.target}"

    async def start(self) -> None:
        """Nothing to do: the channel opens on the first call."""

    async def stop(self) -> None:
        await self._client.close()


class _BootstrapFile:
    """Writes the bootstrap at start; removes it (and an agent-made run dir) at stop."""

    name = "bootstrap"

    def __init__(self, path: Path, bootstrap: Mapping[str, object], *, remove_dir: bool) -> None:
        self.path = path
        self._bootstrap = bootstrap
        self._remove_dir = remove_dir

    async def start(self) -> None:
        write_bootstrap(self.path, self._bootstrap)

    async def stop(self) -> None:
        if self._remove_dir:
            shutil.rmtree(self.path.parent, ignore_errors=True)
        else:
            self.path.unlink(missing_ok=True)
