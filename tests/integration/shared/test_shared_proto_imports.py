"""xds-protos ships an old opentelemetry/proto that breaks the OTLP exporter (grpc/grpc#42926).

Both must import in one fresh interpreter, in either order, without a warning.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

ENVOY = "from envoy.service.discovery.v3 import discovery_pb2"
OTLP = "from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter"
USE = "assert discovery_pb2.DiscoveryRequest().DESCRIPTOR; OTLPSpanExporter(endpoint='http://127.0.0.1:1')"


@pytest.mark.parametrize(
    "imports", [(ENVOY, OTLP), (OTLP, ENVOY)], ids=["envoy-first", "otlp-first"]
)
def test_envoy_protos_and_the_otlp_exporter_import_together(imports: tuple[str, str]) -> None:
    program = "; ".join([*imports, USE])
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", program],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
