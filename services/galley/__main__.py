"""``python -m services.galley``: what a Galley container runs.

Settings come from ``SPLITMESH_GALLEY_*`` environment variables only (``--help`` lists
them; ``splitmesh galley`` is the same service with flags); logs are JSON
lines on stderr. Exit status 2 for an invalid setting, 1 when start-up fails.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys

from services.galley.app import build_galley
from services.galley.settings import GalleySettings
from shared.lifecycle import StartupError
from shared.settings import SettingsError
from shared.telemetry import configure_logging, configure_telemetry


async def _run(settings: GalleySettings) -> None:
    await build_galley(settings).host.run()


def main() -> int:
    """Run Galley until SIGTERM/SIGINT; return the exit status."""
    if len(sys.argv) > 1:
        print(__doc__.strip())
        print("\nSettings (environment variables):")
        for field in dataclasses.fields(GalleySettings):
            print(f"  {GalleySettings.env_name(field.name)}")
        return 0 if sys.argv[1] in ("-h", "--help") else 2
    try:
        settings = GalleySettings.from_env(os.environ)
    except SettingsError as exc:
        print(f"galley: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, json=settings.log_json)
    configure_telemetry("galley", otlp_endpoint=settings.otlp_endpoint)
    try:
        asyncio.run(_run(settings))
    except StartupError as exc:
        print(f"galley: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
