"""``python -m services.citadel``: what a Citadel container runs.

Settings come from ``SPLITMESH_CITADEL_*`` environment variables only (``--help`` lists
them; ``splitmesh citadel`` is the same service with flags); logs are JSON lines on
stderr. Exit status 2 for an invalid setting, 1 when start-up fails (for example unusable
CA files).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys

from services.citadel.app import build_citadel
from services.citadel.settings import CitadelSettings
from shared.lifecycle import StartupError
from shared.settings import SettingsError
from shared.telemetry import configure_logging, configure_telemetry


async def _run(settings: CitadelSettings) -> None:
    await build_citadel(settings).host.run()


def main() -> int:
    """Run Citadel until SIGTERM/SIGINT; return the exit status."""
    if len(sys.argv) > 1:
        print(__doc__.strip())
        print("\nSettings (environment variables):")
        for field in dataclasses.fields(CitadelSettings):
            print(f"  {CitadelSettings.env_name(field.name)}")
        return 0 if sys.argv[1] in ("-h", "--help") else 2
    try:
        settings = CitadelSettings.from_env(os.environ)
    except SettingsError as exc:
        print(f"citadel: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, json=settings.log_json)
    configure_telemetry("citadel", otlp_endpoint=settings.otlp_endpoint)
    try:
        asyncio.run(_run(settings))
    except StartupError as exc:
        print(f"citadel: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
