"""``python -m sidecar``: the agent that runs beside one Envoy (what a sidecar container runs).

Settings come from ``SPLITMESH_SIDECAR_*`` environment variables only (``--help`` lists
them; ``SPLITMESH_SIDECAR_WORKLOAD_NAME`` is required). The agent writes the Envoy
bootstrap, starts Envoy against Pilot, restarts it if it dies, and on SIGTERM or SIGINT
drains and stops it. Logs are JSON lines on stderr. Exit status 2 for an invalid
setting or a missing Envoy binary, 1 when start-up fails.
"""

from __future__ import annotations

import os
import sys

from shared.service_main import run_service
from sidecar.agent import build_agent
from sidecar.envoy_process import EnvoyNotFoundError
from sidecar.settings import SidecarSettings


def main() -> int:
    """Run sidecar until SIGTERM/SIGINT; return the exit status."""
    return run_service(
        name="sidecar",
        doc=__doc__ or "",
        settings_type=SidecarSettings,
        build=build_agent,
        argv=sys.argv[1:],
        environ=os.environ,
        usage_errors=(EnvoyNotFoundError,),
    )


if __name__ == "__main__":
    sys.exit(main())
