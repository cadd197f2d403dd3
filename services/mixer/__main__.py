"""``python -m services.mixer``: what a Mixer container runs.

Settings come from ``SPLITMESH_MIXER_*`` environment variables only (``--help`` lists
them; ``splitmesh mixer`` is the same service with flags such as ``--role``); logs are
JSON lines on stderr. Exit status 2 for an invalid setting, 1 when start-up fails.
"""

from __future__ import annotations

import os
import sys

from services.mixer.app import build_mixer
from services.mixer.settings import MixerSettings
from shared.service_main import run_service


def main() -> int:
    """Run mixer until SIGTERM/SIGINT; return the exit status."""
    return run_service(
        name="mixer",
        doc=__doc__ or "",
        settings_type=MixerSettings,
        build=build_mixer,
        argv=sys.argv[1:],
        environ=os.environ,
        otlp_endpoint=lambda settings: settings.otlp_endpoint,
        telemetry_name=lambda settings: f"mixer-{settings.role}",
    )


if __name__ == "__main__":
    sys.exit(main())
