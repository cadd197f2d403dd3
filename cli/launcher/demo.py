"""The demo that ``make run`` shows: traffic through a running demo shop, routed by config.

:func:`run_demo` sends requests through the storefront's sidecar (plain HTTP to its
outbound port, the Host header naming the destination) and prints what came back next to
what the config says: the catalog canary split (observed versus configured weights, read
from the VirtualService in the config directory), header routing (``x-user: tester``),
fault injection (``x-user: chaos`` on ratings), retries hiding ratings' own failures, and
one end-to-end storefront page. When the mesh runs Mixer it goes on with Istio 1.4's
policy and telemetry (:mod:`cli.launcher.demo_policy`: a denial, an AuthorizationPolicy
denial, a quota, Mixer's live request metrics) and whether the sidecars spoke mTLS.
It needs the demo workloads of ``examples/apps/workloads.yaml`` and raises
:class:`DemoError` when they are not running."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import track
from rich.table import Table

from cli.launcher.demo_policy import show_metrics, show_mtls, show_policy
from cli.launcher.demo_traffic import CATALOG, RATINGS, SOURCE, Reply, send
from cli.launcher.mesh_config import find_mesh_config
from cli.launcher.state import MeshState
from shared.config import parse_yaml
from shared.config.networking_virtualservice import VirtualServiceSpec

RATINGS_PATH = "/ratings/1"  # what storefront asks ratings for (and its policy allows)
_TIMEOUT_S = 10.0


class DemoError(RuntimeError):
    """The demo workloads are not there to send traffic through."""


def configured_split(config_dir: Path, host: str) -> dict[str, int]:
    """The weights by subset of the first weighted route of ``host``'s VirtualService."""
    for path in sorted(config_dir.rglob("*.yaml")):
        for resource in parse_yaml(path.read_bytes(), str(path)).resources:
            spec = resource.spec
            if not isinstance(spec, VirtualServiceSpec) or host not in spec.hosts:
                continue
            for route in spec.http:
                if len(route.route) > 1:
                    return {
                        destination.destination.subset or "": destination.weight or 0
                        for destination in route.route
                    }
    return {}


def run_demo(state: MeshState, console: Console, *, requests: int) -> None:
    """Send the demo traffic and print what it shows (see the module docstring)."""
    source = state.component(SOURCE)
    if source is None or "outbound" not in source.ports:
        raise DemoError(f"no {SOURCE} workload in this mesh: the demo needs the demo shop")
    port = source.ports["outbound"]
    _canary(console, port, configured_split(state.config_dir, CATALOG), requests)
    testers = Counter(r.version for r in send(port, CATALOG, 20, headers={"x-user": "tester"}))
    console.print(
        f"\n[bold]Header routing[/]: 20 requests with x-user: tester went to {dict(testers)}"
    )
    chaos = send(port, RATINGS, 20, headers={"x-user": "chaos"}, path=RATINGS_PATH)
    console.print(
        f"[bold]Fault injection[/]: 20 ratings requests with x-user: chaos got "
        f"{dict(Counter(r.status for r in chaos))} (half aborted with 503), "
        f"median {statistics.median(r.seconds for r in chaos) * 1000:.0f} ms (200 ms delay)"
    )
    plain = Counter(r.status for r in send(port, RATINGS, 50, path=RATINGS_PATH))
    console.print(
        f"[bold]Retries[/]: the ratings app fails 30 % of its requests; through the mesh "
        f"50 requests got {dict(plain)}"
    )
    if "inbound" in source.ports:
        page = httpx.get(f"http://127.0.0.1:{source.ports['inbound']}/", timeout=_TIMEOUT_S)
        console.print(
            f"[bold]End to end[/]: the storefront's page, through its sidecar: "
            f"{json.dumps(page.json())}",
            highlight=False,
        )
    mixer = state.component("mixer")
    if mixer is not None:
        show_policy(console, port)
        flush = find_mesh_config(state.config_dir).spec.report_batch_max_time
        show_metrics(console, mixer, flush_s=flush.total_seconds())
    catalog = state.component("catalog-v1")
    if catalog is not None and "admin" in catalog.ports:
        show_mtls(console, catalog)
    console.print(
        "\nThe mesh keeps running: try `splitmesh status` or "
        f"`splitmesh proxy-config {SOURCE} routes`. Stop it with `make down` or "
        "`splitmesh down`."
    )


def _canary(console: Console, port: int, configured: dict[str, int], requests: int) -> None:
    replies: list[Reply] = []
    batches = [100] * (requests // 100) + ([requests % 100] if requests % 100 else [])
    for size in track(batches, description=f"{requests} requests to catalog"):
        replies += send(port, CATALOG, size)
    seen = Counter(r.version for r in replies if r.status == 200)
    table = Table(
        title=f"Canary split of {CATALOG} over {len(replies)} requests", title_justify="left"
    )
    for column in ("version", "configured", "observed", "requests"):
        table.add_column(column, justify="right")
    total = sum(configured.values()) or 1
    for version in sorted(set(configured) | {v for v in seen if v}):
        table.add_row(
            version,
            f"{configured.get(version, 0) * 100 / total:.0f} %",
            f"{seen[version] * 100 / max(1, len(replies)):.1f} %",
            str(seen[version]),
        )
    failed = len(replies) - sum(seen.values())
    if failed:
        table.caption = f"{failed} request(s) did not get a 200"
    console.print(table)
