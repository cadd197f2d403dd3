"""``python -m services.pilot``: what a Pilot container runs.

Settings come from ``SPLITMESH_PILOT_*`` environment variables only (``--help`` lists
them; ``splitmesh pilot`` is the same service with flags); logs are JSON lines on stderr.
Pilot follows Galley over MCP, serves ADS (xDS v3, SotW and delta) on the gRPC port and
health, metrics and ``/debug/*`` on the HTTP port. Exit status 2 for an invalid setting,
1 when start-up fails.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys

from services.pilot.app import build_pilot
from services.pilot.settings import PilotSettings
from shared.lifecycle import StartupError
from shared.settings import SettingsError
from shared.telemetry import configure_logging, configure_telemetry


async def _run(settings: PilotSettings) -> None:
    await build_pilot(settings).host.run()


def main() -> int:
    """Run Pilot until SIGTERM/SIGINT; return the exit status."""
    if len(sys.argv) > 1:
        print(__doc__.strip())
        print("\nSettings (environment variables):")
        for field in dataclasses.fields(PilotSettings):
            print(f"  {PilotSettings.env_name(field.name)} (default {field.default})")
        return 0 if sys.argv[1] in ("-h", "--help") else 2
    try:
        settings = PilotSettings.from_env(os.environ)
    except SettingsError as exc:
        print(f"pilot: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, json=settings.log_json)
    configure_telemetry("pilot", otlp_endpoint=settings.otlp_endpoint)
    try:
        asyncio.run(_run(settings))
    except StartupError as exc:
        print(f"pilot: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
