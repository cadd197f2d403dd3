"""``python -m services.mixer``: what a Mixer container runs.

Settings come from ``SPLITMESH_MIXER_*`` environment variables only (``--help`` lists
them; ``splitmesh mixer`` is the same service with flags such as ``--role``); logs are
JSON lines on stderr. Exit status 2 for an invalid setting, 1 when start-up fails.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys

from services.mixer.app import build_mixer
from services.mixer.settings import MixerSettings
from shared.lifecycle import StartupError
from shared.settings import SettingsError
from shared.telemetry import configure_logging, configure_telemetry


async def _run(settings: MixerSettings) -> None:
    await build_mixer(settings).host.run()


def main() -> int:
    """Run Mixer until SIGTERM/SIGINT; return the exit status."""
    if len(sys.argv) > 1:
        print(__doc__.strip())
        print("\nSettings (environment variables):")
        for field in dataclasses.fields(MixerSettings):
            print(f"  {MixerSettings.env_name(field.name)}")
        return 0 if sys.argv[1] in ("-h", "--help") else 2
    try:
        settings = MixerSettings.from_env(os.environ)
    except SettingsError as exc:
        print(f"mixer: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, json=settings.log_json)
    configure_telemetry(f"mixer-{settings.role}", otlp_endpoint=settings.otlp_endpoint)
    try:
        asyncio.run(_run(settings))
    except StartupError as exc:
        print(f"mixer: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
