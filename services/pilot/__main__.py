"""``python -m services.pilot``: what a Pilot container runs.

Settings come from ``SPLITMESH_PILOT_*`` environment variables only (``--help`` lists
them; ``splitmesh pilot`` is the same service with flags); logs are JSON lines on stderr.
Pilot follows Galley over MCP, serves ADS (xDS v3, SotW and delta) on the gRPC port and
health, metrics and ``/debug/*`` on the HTTP port. Exit status 2 for an invalid setting,
1 when start-up fails.
"""

from __future__ import annotations

import os
import sys

from services.pilot.app import build_pilot
from services.pilot.settings import PilotSettings
from shared.service_main import run_service


def main() -> int:
    """Run pilot until SIGTERM/SIGINT; return the exit status."""
    return run_service(
        name="pilot",
        doc=__doc__ or "",
        settings_type=PilotSettings,
        build=build_pilot,
        argv=sys.argv[1:],
        environ=os.environ,
        otlp_endpoint=lambda settings: settings.otlp_endpoint,
    )


if __name__ == "__main__":
    sys.exit(main())
