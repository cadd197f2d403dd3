"""The demo's Istio 1.4 part: Mixer's policy and telemetry, and mutual TLS between sidecars.

:func:`show_policy` sends requests that the demo config's Mixer rules
(``examples/mesh/mixer.yaml``, ``security.yaml``) act on and prints what came back: a
denial (``x-blocked: true`` → 403 from the denier), an AuthorizationPolicy denial
(ratings serves only ``GET /ratings/*``) and a quota (``x-quota: on`` → the memquota
allows a few, then 429). :func:`show_metrics` prints Mixer's live
``istio_requests_total`` (as the destination sidecars reported it) by destination and
response code, once the counts stopped moving for longer than the sidecars' report
interval.
:func:`show_mtls` reads a destination sidecar's Envoy stats: TLS handshakes on its
inbound listener mean the traffic between sidecars was mutual TLS.

All read over HTTP from the running mesh and raise ``httpx.HTTPError`` when a component
does not answer; nothing here changes the mesh.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from cli.launcher.demo_traffic import CATALOG, RATINGS, send
from cli.launcher.state import ComponentState

QUOTA_REFUSALS = 3
QUOTA_MAX_REQUESTS = 50
_POLL_S = 0.25
_SETTLE_S = 0.5
_SETTLE_MAX_S = 15.0
_TIMEOUT_S = 10.0


def show_policy(console: Console, port: int) -> None:
    """Denier, AuthorizationPolicy and quota, through the sidecar outbound ``port``."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=_TIMEOUT_S) as client:
        blocked = client.get("/", headers={"host": CATALOG, "x-blocked": "true"})
        console.print(
            f"\n[bold]Policy check (Mixer)[/]: a catalog request with x-blocked: true got "
            f"{blocked.status_code} {blocked.text!r} (denier rule in mixer.yaml)",
            highlight=False,
        )
        outside = client.get("/", headers={"host": RATINGS})
        console.print(
            f"[bold]AuthorizationPolicy (Mixer)[/]: GET / on ratings got {outside.status_code} "
            f"{outside.text!r} (ratings-readers allows only GET /ratings/*)",
            highlight=False,
        )
    quota = _until_denied(port)
    allowed = quota.index(429) if 429 in quota else len(quota)
    console.print(
        f"[bold]Quota (Mixer memquota)[/]: {len(quota)} catalog requests with x-quota: on "
        f"got {dict(Counter(quota))}: {allowed} allowed, then 429 Too Many Requests "
        "(mixer.yaml: a few per 10 s window per source workload)"
    )


def show_metrics(console: Console, mixer: ComponentState, *, flush_s: float) -> None:
    """Mixer's ``istio_requests_total`` by destination and response code.

    Sidecars send reports every ``flush_s`` (MeshConfig ``reportBatchMaxTime``), so the
    counts are read until they stayed the same for longer than that.
    """
    url = f"http://127.0.0.1:{mixer.ports['http']}/metrics"
    counts = _requests_total(url)
    changed = time.monotonic()
    deadline = changed + _SETTLE_MAX_S
    while time.monotonic() - changed <= flush_s + _SETTLE_S and time.monotonic() < deadline:
        time.sleep(_POLL_S)
        latest = _requests_total(url)
        if latest != counts:
            counts, changed = latest, time.monotonic()
    table = Table(
        title=f"Live metrics: istio_requests_total from Mixer ({url})", title_justify="left"
    )
    table.add_column("destination")
    table.add_column("response code", justify="right")
    table.add_column("requests", justify="right")
    for (destination, code), value in sorted(counts.items()):
        table.add_row(destination, code, f"{value:.0f}")
    table.caption = "as reported by the destination sidecars"
    console.print(table)


def show_mtls(console: Console, destination: ComponentState) -> None:
    """Whether ``destination``'s inbound listener completed TLS handshakes."""
    admin = f"http://127.0.0.1:{destination.ports['admin']}"
    inbound = destination.ports.get("inbound")
    response = httpx.get(
        f"{admin}/stats",
        params={"filter": rf"^listener\..*_{inbound}\.ssl\.handshake$"},
        timeout=_TIMEOUT_S,
    )
    response.raise_for_status()
    handshakes = sum(
        int(value)
        for _, _, value in (line.partition(": ") for line in response.text.splitlines())
        if value.strip().isdigit()
    )
    if handshakes:
        console.print(
            f"[bold]Mutual TLS[/]: {destination.name}'s inbound listener (port {inbound}) "
            f"completed {handshakes} TLS handshakes (Envoy admin {admin}/stats): sidecars "
            "talk mTLS with certificates from Citadel"
        )
    else:
        console.print(
            f"[bold]Mutual TLS[/]: [yellow]off[/] — {destination.name}'s inbound listener "
            f"(port {inbound}) saw no TLS handshake; traffic between sidecars is plaintext"
        )


def _until_denied(port: int) -> list[int]:
    """Statuses of quota-marked requests, sent one by one until a few were refused.

    Sending until refused (not a fixed count) shows the quota even when a window edge
    passes during the burst.
    """
    statuses: list[int] = []
    while statuses.count(429) < QUOTA_REFUSALS and len(statuses) < QUOTA_MAX_REQUESTS:
        statuses += [r.status for r in send(port, CATALOG, 1, headers={"x-quota": "on"})]
    return statuses


def _requests_total(url: str) -> dict[tuple[str, str], float]:
    response = httpx.get(url, timeout=_TIMEOUT_S)
    response.raise_for_status()
    counts: defaultdict[tuple[str, str], float] = defaultdict(float)
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "istio_requests_total" and labels.get("reporter") == "destination":
                key = (labels.get("destination_service", "?"), labels.get("response_code", "?"))
                counts[key] += sample.value
    return dict(counts)
