"""The demo shop: one tiny HTTP app, run once per workload.

``python -m examples.apps.shop --service catalog --version v2 --port 28082`` serves
``GET /<anything>`` with JSON naming the service and version (``{"service": "catalog",
"version": "v2", "path": "/items", "host": "..."}``), and ``GET /healthz``.

- ``--service storefront`` also calls catalog (``/items``) and ratings (``/ratings/1``)
  THROUGH ITS OWN SIDECAR: plain HTTP to ``127.0.0.1:<--sidecar-port>`` with the Host header
  naming the destination (``catalog.shop.svc.cluster.local``); it forwards ``x-user`` and
  reports what each call returned.
- ``--fail-rate 0.5`` answers 503 to that fraction of requests, deterministically spread
  (0.5: every second request fails, the first succeeds) — for the retries demo.
- ``?sleep_ms=N`` on any request waits N ms before answering — for the timeouts demo.

Only the standard library. Each request runs on its own thread; the failure counter is
locked. SIGTERM or SIGINT stops the server (exit status 0).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_CALL_TIMEOUT_S = 5.0
_DOWNSTREAM = (("catalog", "/items"), ("ratings", "/ratings/1"))
_FORWARDED = ("x-user", "x-request-id")


class _Failures:
    """Decides which requests fail so that exactly ``rate`` of them do, evenly spread."""

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._count = 0
        self._lock = threading.Lock()

    def next_fails(self) -> bool:
        with self._lock:
            count = self._count
            self._count += 1
        return math.floor((count + 1) * self._rate) > math.floor(count * self._rate)


class _ShopServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, options: argparse.Namespace) -> None:
        super().__init__(("127.0.0.1", options.port), _Handler)
        self.options = options
        self.failures = _Failures(options.fail_rate)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes
    server: _ShopServer

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/healthz":
            self._reply(200, {"status": "ok"})
            return
        options = self.server.options
        sleep_ms = parse_qs(url.query).get("sleep_ms", ["0"])[0]
        if sleep_ms.isdigit():
            time.sleep(int(sleep_ms) / 1000)
        identity = {"service": options.service, "version": options.version}
        if self.server.failures.next_fails():
            self._reply(503, {**identity, "error": "injected failure"})
            return
        body: dict[str, Any] = {**identity, "path": url.path, "host": self.headers.get("host")}
        if options.service == "storefront":
            for service, path in _DOWNSTREAM:
                body[service] = self._call(service, path)
        self._reply(200, body)

    def _call(self, service: str, path: str) -> dict[str, Any]:
        options = self.server.options
        if options.sidecar_port is None:
            return {"status": None, "error": "no --sidecar-port given"}
        headers = {
            "host": f"{service}.{options.namespace}.svc.cluster.local",
            **{name: value for name in _FORWARDED if (value := self.headers.get(name))},
        }
        connection = http.client.HTTPConnection(
            "127.0.0.1", options.sidecar_port, timeout=_CALL_TIMEOUT_S
        )
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        except OSError as exc:
            return {"status": None, "error": str(exc)}
        finally:
            connection.close()
        try:
            answer: object = json.loads(raw)
        except ValueError:
            answer = raw.decode(errors="replace")
        return {"status": response.status, "body": answer}

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a thousand demo requests would drown the log."""


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m examples.apps.shop", description=__doc__)
    parser.add_argument("--service", required=True, help="storefront, catalog, ratings, ...")
    parser.add_argument("--version", default="v1")
    parser.add_argument("--namespace", default="shop")
    parser.add_argument("--port", type=int, required=True, help="the app port to listen on")
    parser.add_argument("--sidecar-port", type=int, help="this workload's sidecar outbound port")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="fraction answered 503")
    options = parser.parse_args(argv)
    if not 0.0 <= options.fail_rate <= 1.0:
        parser.error("--fail-rate must be between 0 and 1")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT."""
    options = _parse(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with _ShopServer(options) as server:
        print(
            f"{options.service} {options.version} on 127.0.0.1:{options.port}",
            file=sys.stderr,
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
