"""What the launcher reads from the config directory's MeshConfig before starting Mixer.

Sidecars find Mixer where MeshConfig's ``mixerCheckServer``/``mixerReportServer`` say
(Pilot turns them into the ext_authz, rate-limit and access-log clusters), so the config
is the one source of truth for Mixer's address: :func:`mixer_placement` returns the gRPC
port the launcher's Mixer must listen on — the port of ``mixerCheckServer`` (or of
``mixerReportServer`` when only telemetry is on) when it names this machine's loopback —
plus notes for the user when the MeshConfig asks for something one local Mixer cannot
be (two different ports, another host) or turns Mixer off. Port 0 then means "any free
port": nothing calls that Mixer. The address is read once, at ``up``; a later edit of
it needs a restart of the mesh.

Pure functions of the files on disk; files that do not parse are skipped here (Galley
reports them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.pilot.core.xds.mixer_mode import MixerServer, mixer_mode
from shared.config import parse_yaml
from shared.config.mesh import MeshConfigSpec

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_SUFFIXES = frozenset({".yaml", ".yml"})


@dataclass(frozen=True, slots=True)
class FoundMeshConfig:
    """The MeshConfig in effect and the file it came from (None: Istio's defaults)."""

    spec: MeshConfigSpec
    source: Path | None


@dataclass(frozen=True, slots=True)
class MixerPlacement:
    """Where the launcher's Mixer listens for gRPC (0: any port) and what to tell the user."""

    grpc_port: int
    notes: tuple[str, ...] = ()


def find_mesh_config(config_dir: Path) -> FoundMeshConfig:
    """The first MeshConfig under ``config_dir`` (files in name order), else the defaults."""
    for path in sorted(config_dir.rglob("*")):
        if path.suffix not in _SUFFIXES or not path.is_file():
            continue
        for resource in parse_yaml(path.read_bytes(), str(path)).resources:
            if isinstance(resource.spec, MeshConfigSpec):
                return FoundMeshConfig(resource.spec, path)
    return FoundMeshConfig(MeshConfigSpec(), None)


def mixer_placement(found: FoundMeshConfig) -> MixerPlacement:
    """Mixer's gRPC port as the MeshConfig names it (see the module docstring)."""
    mode = mixer_mode(found.spec)
    where = found.source.name if found.source is not None else "the default MeshConfig"
    notes = [f"{where}: {problem}" for problem in mode.bad_addresses]
    servers = [server for server in (mode.check, mode.report) if server is not None]
    if not servers:
        notes.append(
            f"{where} sets no mixerCheckServer/mixerReportServer (or disables them): "
            "Mixer runs, but no sidecar calls it"
        )
        return MixerPlacement(0, tuple(notes))
    first = servers[0]
    if any(server != first for server in servers):
        notes.append(
            f"{where}: mixerCheckServer and mixerReportServer differ; the launcher runs one "
            f"Mixer (both roles) at {_text(first)}"
        )
    if first.host not in _LOOPBACK:
        notes.append(
            f"{where} names Mixer at {_text(first)}, not on this machine's loopback: "
            "the launcher's Mixer is not the one sidecars call"
        )
        return MixerPlacement(0, tuple(notes))
    return MixerPlacement(first.port, tuple(notes))


def _text(server: MixerServer) -> str:
    return f"{server.host}:{server.port}" if server.port else server.host
