"""Requests through a sidecar, as the demo shop's apps send them.

:func:`send` sends GETs to a sidecar's outbound listener (plain HTTP, the Host header
naming the destination service) and records each :class:`Reply`. Synchronous; raises
``httpx.HTTPError`` when the sidecar does not answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

SOURCE = "storefront-v1"
CATALOG = "catalog.shop.svc.cluster.local"
RATINGS = "ratings.shop.svc.cluster.local"
_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Reply:
    """One response: its status, the version that answered (if any) and how long it took."""

    status: int
    version: str | None
    seconds: float


def send(
    port: int,
    host: str,
    count: int,
    *,
    headers: dict[str, str] | None = None,
    path: str = "/",
) -> list[Reply]:
    """Send ``count`` GETs for ``path`` to ``host`` through the sidecar outbound ``port``."""
    replies = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=_TIMEOUT_S) as client:
        for _ in range(count):
            began = time.perf_counter()
            response = client.get(path, headers={"host": host, **(headers or {})})
            elapsed = time.perf_counter() - began
            try:
                version = response.json().get("version")
            except ValueError:
                version = None
            replies.append(Reply(response.status_code, version, elapsed))
    return replies
