"""Whether and where the mesh runs Mixer, read from MeshConfig's Istio 1.4 fields.

Policy (ext_authz Check and RLS quota) is on when ``disablePolicyChecks`` is false and
``mixerCheckServer`` is set; telemetry (the gRPC access log, Mixer's Report) is on when
``disableMixerHttpReports`` is false and ``mixerReportServer`` is set. A server is
``host:port`` (a DNS name or an IP; ``[v6]:port``) or ``unix:///path``. An address that
does not parse leaves its side off (Galley rejects such a MeshConfig, so this is only a
guard); :attr:`MixerMode.bad_addresses` names it for the caller to report.

Nothing else turns Mixer mode on: splitmesh's ``mixer``/``proxy`` policy mode knob is
exactly these MeshConfig fields. Pure functions; values are immutable.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from services.pilot.core.xds.protos import UNIX_PREFIX
from shared.config.mesh import MeshConfigSpec


@dataclass(frozen=True, slots=True)
class MixerServer:
    """Where one Mixer role listens: ``host``/``port``, or a pipe (``unix://…``, port 0)."""

    host: str
    port: int

    @property
    def is_ip_or_pipe(self) -> bool:
        """True when no DNS lookup is needed (a STATIC cluster reaches it)."""
        return self.host.startswith(UNIX_PREFIX) or _is_ip(self.host)

    @classmethod
    def parse(cls, text: str) -> MixerServer | None:
        """``host:port`` or ``unix:///path``; None when it is neither."""
        text = text.strip()
        if text.startswith(UNIX_PREFIX):
            return cls(text, 0) if len(text) > len(UNIX_PREFIX) else None
        host, sep, port = text.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            return None
        return cls(host, int(port))


@dataclass(frozen=True, slots=True, kw_only=True)
class MixerMode:
    """The Mixer roles in use: ``check`` (policy) and ``report`` (telemetry) servers."""

    check: MixerServer | None
    report: MixerServer | None
    fail_open: bool
    bad_addresses: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        """True when either role is in use."""
        return self.check is not None or self.report is not None


def mixer_mode(mesh: MeshConfigSpec) -> MixerMode:
    """The Mixer roles ``mesh`` turns on (see the module docstring)."""
    bad: list[str] = []
    check = _server(
        mesh.mixer_check_server, "mixerCheckServer", not mesh.disable_policy_checks, bad
    )
    report = _server(
        mesh.mixer_report_server, "mixerReportServer", not mesh.disable_mixer_http_reports, bad
    )
    return MixerMode(
        check=check,
        report=report,
        fail_open=mesh.policy_check_fail_open,
        bad_addresses=tuple(bad),
    )


def _server(text: str, field: str, enabled: bool, bad: list[str]) -> MixerServer | None:
    if not enabled or not text.strip():
        return None
    server = MixerServer.parse(text)
    if server is None:
        bad.append(f"{field} {text!r} is not host:port or unix:///path; that role is off")
    return server


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
