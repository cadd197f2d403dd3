"""``python -m services.citadel``: what a Citadel container runs.

Settings come from ``SPLITMESH_CITADEL_*`` environment variables only (``--help`` lists
them; ``splitmesh citadel`` is the same service with flags); logs are JSON lines on
stderr. Exit status 2 for an invalid setting, 1 when start-up fails (for example unusable
CA files).
"""

from __future__ import annotations

import os
import sys

from services.citadel.app import build_citadel
from services.citadel.settings import CitadelSettings
from shared.service_main import run_service


def main() -> int:
    """Run citadel until SIGTERM/SIGINT; return the exit status."""
    return run_service(
        name="citadel",
        doc=__doc__ or "",
        settings_type=CitadelSettings,
        build=build_citadel,
        argv=sys.argv[1:],
        environ=os.environ,
        otlp_endpoint=lambda settings: settings.otlp_endpoint,
    )


if __name__ == "__main__":
    sys.exit(main())
