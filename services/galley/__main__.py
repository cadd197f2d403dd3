"""``python -m services.galley``: what a Galley container runs.

Settings come from ``SPLITMESH_GALLEY_*`` environment variables only (``--help`` lists
them; ``splitmesh galley`` is the same service with flags); logs are JSON
lines on stderr. Exit status 2 for an invalid setting, 1 when start-up fails.
"""

from __future__ import annotations

import os
import sys

from services.galley.app import build_galley
from services.galley.settings import GalleySettings
from shared.service_main import run_service


def main() -> int:
    """Run galley until SIGTERM/SIGINT; return the exit status."""
    return run_service(
        name="galley",
        doc=__doc__ or "",
        settings_type=GalleySettings,
        build=build_galley,
        argv=sys.argv[1:],
        environ=os.environ,
        otlp_endpoint=lambda settings: settings.otlp_endpoint,
    )


if __name__ == "__main__":
    sys.exit(main())
