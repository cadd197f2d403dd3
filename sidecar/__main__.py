"""``python -m sidecar``: the agent that runs beside one Envoy (what a sidecar container runs).

Settings come from ``SPLITMESH_SIDECAR_*`` environment variables only (``--help`` lists
them; ``SPLITMESH_SIDECAR_WORKLOAD_NAME`` is required). The agent writes the Envoy
bootstrap, starts Envoy against Pilot, restarts it if it dies, and on SIGTERM or SIGINT
drains and stops it. Logs are JSON lines on stderr. Exit status 2 for an invalid
setting or a missing Envoy binary, 1 when start-up fails.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys

from shared.lifecycle import StartupError
from shared.settings import SettingsError
from shared.telemetry import configure_logging
from sidecar.agent import build_agent
from sidecar.envoy_process import EnvoyNotFoundError
from sidecar.settings import SidecarSettings


async def _run(settings: SidecarSettings) -> None:
    await build_agent(settings).host.run()


def main() -> int:
    """Run the agent until SIGTERM/SIGINT; return the exit status."""
    if len(sys.argv) > 1:
        print(__doc__.strip())
        print("\nSettings (environment variables):")
        for field in dataclasses.fields(SidecarSettings):
            print(f"  {SidecarSettings.env_name(field.name)} (default {field.default!r})")
        return 0 if sys.argv[1] in ("-h", "--help") else 2
    try:
        settings = SidecarSettings.from_env(os.environ)
    except SettingsError as exc:
        print(f"sidecar: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, json=settings.log_json)
    try:
        asyncio.run(_run(settings))
    except EnvoyNotFoundError as exc:
        print(f"sidecar: {exc}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"sidecar: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
