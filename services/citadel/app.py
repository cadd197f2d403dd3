"""Citadel's composition root: settings in, a host of started-in-order components out.

:func:`build_citadel` wires the core CA to its adapters (the gRPC CertificateService, the
admin HTTP app with ``/debug/root``) on servers it creates. Nothing listens or reads a
file until ``citadel.host.start()``. Start order: the CA (loads the plugged-in CA, or
loads or creates the self-signed root in ``state_dir``; loads or creates the token key;
then ticks root rotation every ``root_check_interval_s``), the gRPC server, admin HTTP,
the ports file. Stop goes in reverse. The monolith can reuse :class:`CaRunner`'s
authority in-process.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics

from services.citadel.adapters import grpc_service
from services.citadel.adapters.key_files import load_or_create_token_key, load_token_public_key
from services.citadel.adapters.plugged_ca import load_plugged_ca
from services.citadel.adapters.root_store import FileRootStore
from services.citadel.core.authority import CertificateAuthority, IssuedChain, Lifetimes
from services.citadel.core.rotation import PluggedRoots, RootSource, SelfSignedRoots
from services.citadel.core.token import TokenVerifier
from services.citadel.settings import CitadelSettings
from shared.grpc_server import GrpcServer
from shared.http_server import HttpServer, build_http_app
from shared.lifecycle import Component, ComponentHost, cancel_and_wait
from shared.ports_file import PortsFile

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Citadel:
    """The wired service. ``host`` owns the life of every component."""

    settings: CitadelSettings
    ca: CaRunner
    grpc: GrpcServer
    admin: HttpServer
    host: ComponentHost

    def ports(self) -> dict[str, int]:
        """The bound ports (valid once started): ``grpc`` and ``http``."""
        return {"grpc": self.grpc.port, "http": self.admin.port}


def build_citadel(settings: CitadelSettings) -> Citadel:
    """Wire Citadel from validated ``settings``; see the module docstring.

    Call it from inside the event loop that will run the host (gRPC servers are bound to
    the loop they are created on).
    """
    ca = CaRunner(settings)
    grpc = GrpcServer(host=settings.host, port=settings.grpc_port, name="citadel-grpc")
    grpc_service.register(grpc.server, ca)
    admin = HttpServer(
        build_http_app(
            service="citadel", readiness=lambda: ca.loaded, debug={"root": ca.root_status}
        ),
        host=settings.host,
        port=settings.http_port,
        name="citadel-http",
    )
    components: list[Component] = [ca, grpc, admin]
    if settings.ports_file is not None:
        components.append(PortsFile(settings.ports_file, {"grpc": grpc, "http": admin}))
    return Citadel(
        settings=settings,
        ca=ca,
        grpc=grpc,
        admin=admin,
        host=ComponentHost(components, name="citadel"),
    )


class CaRunner:
    """The CA as a Component: loads its material on start, then ticks root rotation.

    Implements the servicer's :class:`~services.citadel.adapters.grpc_service.Issuer`
    by delegating to the :class:`CertificateAuthority` built at start.
    """

    name = "citadel-ca"

    def __init__(self, settings: CitadelSettings) -> None:
        self._settings = settings
        self._authority: CertificateAuthority | None = None
        self._roots: RootSource | None = None
        self._ticker: asyncio.Task[None] | None = None
        meter = metrics.get_meter("splitmesh.citadel")
        self._rotations = meter.create_counter(
            "citadel.root.events", unit="{event}", description="Root creation and rotation steps"
        )
        self._root_expiry = meter.create_gauge(
            "citadel.root.not_after", unit="s", description="Signing root expiry (Unix time)"
        )

    @property
    def loaded(self) -> bool:
        """Whether the CA material is loaded (readiness)."""
        return self._authority is not None

    @property
    def authority(self) -> CertificateAuthority:
        """The core CA; only after :meth:`start`."""
        if self._authority is None:
            raise RuntimeError("the CA is not started")
        return self._authority

    def create_certificate(
        self, *, authorization: str | None, csr_pem: str, validity_s: int, peer: str = ""
    ) -> IssuedChain:
        """Delegate to the core CA (see :class:`CertificateAuthority`)."""
        return self.authority.create_certificate(
            authorization=authorization, csr_pem=csr_pem, validity_s=validity_s, peer=peer
        )

    def trusted_roots(self) -> tuple[str, ...]:
        """Every root workloads must trust now (PEM)."""
        return self.authority.trusted_roots()

    def root_status(self) -> dict[str, Any]:
        """The ``/debug/root`` view."""
        if self._roots is None:
            return {"loaded": False}
        return self._roots.status(_now())

    async def start(self) -> None:
        """Load the CA material and the token key, then start the rotation ticker."""
        settings = self._settings
        roots: RootSource
        if settings.plugged_ca_dir is not None:
            roots = PluggedRoots(load_plugged_ca(settings.plugged_ca_dir))
            self._record(["plugged_ca_loaded"], roots)
        else:
            self_signed = SelfSignedRoots(
                store=FileRootStore(settings.state_dir),
                key_type=settings.ca_key_type,
                trust_domain=settings.trust_domain,
                root_ttl=datetime.timedelta(seconds=settings.root_ttl_s),
                rotation_fraction=settings.root_rotation_fraction,
                rotation_grace=datetime.timedelta(seconds=settings.root_rotation_grace_s),
            )
            self._record(self_signed.load_or_create(_now()), self_signed)
            roots = self_signed
        if settings.token_public_key is not None:
            public_key = load_token_public_key(settings.token_public_key)
        else:
            public_key = load_or_create_token_key(settings.token_signing_key).public_key()
        self._roots = roots
        self._authority = CertificateAuthority(
            roots=roots,
            verifier=TokenVerifier(
                public_key=public_key,
                trust_domain=settings.trust_domain,
                max_ttl_s=settings.max_token_ttl_s,
                trusted_roots=lambda: roots.current.trusted,
            ),
            lifetimes=Lifetimes(
                default=datetime.timedelta(seconds=settings.workload_cert_ttl_s),
                maximum=datetime.timedelta(seconds=settings.max_workload_cert_ttl_s),
            ),
            allowed_key_types=settings.allowed_key_types,
            max_csr_bytes=settings.max_csr_bytes,
        )
        self._ticker = asyncio.create_task(self._tick_forever(roots), name="citadel-rotation")

    async def stop(self) -> None:
        """Stop the rotation ticker. Idempotent."""
        ticker, self._ticker = self._ticker, None
        await cancel_and_wait(ticker)

    async def _tick_forever(self, roots: RootSource) -> None:
        while True:
            await asyncio.sleep(self._settings.root_check_interval_s)
            try:
                self._record(roots.tick(_now()), roots)
            except Exception:
                _log.exception("root rotation step failed; retrying next interval")

    def _record(self, events: list[str], roots: RootSource) -> None:
        signing = roots.current.material.root
        for event in events:
            self._rotations.add(1, {"event": event})
            _log.info(
                "CA root %s: signing root %s expires %s",
                event,
                signing.subject.rfc4514_string(),
                signing.not_valid_after_utc.isoformat(),
                extra={"event": event},
            )
        self._root_expiry.set(signing.not_valid_after_utc.timestamp())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
