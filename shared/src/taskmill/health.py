"""Health of a dispatcher or worker process, served beside its Prometheus metrics.

    GET /healthz   200 while the process's main loop went round within `stall_s`, else 503
    GET /metrics   the Prometheus exposition; any other path is 404

The loop calls `Liveness.beat()` every time round; a loop stuck on a dead socket or a
deadlock stops beating and the container's probe restarts it. The api serves its own
`/healthz` and `/readyz` (taskmill_api.resources).

    python -m taskmill.health http://127.0.0.1:9100/healthz

is the images' HEALTHCHECK: exit 0 on a 200 answer, 1 otherwise (the slim images have
no curl).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import REGISTRY, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

HEALTH_PATH = "/healthz"


def process_name() -> str:
    """This process among its peers: `<host>-<pid>-<random>`, unique across hosts and
    restarts (a worker's name in its reports, a dispatcher's on the relays it holds)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
METRICS_PATH = "/metrics"
PROBE_TIMEOUT_S = 3.0


class Liveness:
    """When the main loop last went round, and whether that is recent enough."""

    def __init__(self, stall_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._stall_s = stall_s
        self._clock = clock
        self._last = clock()

    def beat(self) -> None:
        """Record that the loop is going round."""
        self._last = self._clock()

    def silent_s(self) -> float:
        """Seconds since the last beat."""
        return self._clock() - self._last

    def alive(self) -> bool:
        """True while the last beat is at most `stall_s` old."""
        return self.silent_s() <= self._stall_s


def health_app(liveness: Liveness, registry: Any = REGISTRY) -> Callable[..., Iterable[bytes]]:
    """The WSGI app of the health-and-metrics port."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == METRICS_PATH:
            return metrics(environ, start_response)
        if path == HEALTH_PATH:
            alive = liveness.alive()
            body = b"ok\n" if alive else f"stalled {liveness.silent_s():.0f}s\n".encode()
            start_response("200 OK" if alive else "503 Service Unavailable",
                           [("Content-Type", "text/plain")])
            return [body]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: try /healthz or /metrics\n"]

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        """Probes every few seconds would drown the JSON logs."""


def serve(port: int, addr: str, liveness: Liveness) -> ThreadingWSGIServer:
    """Serve /healthz and /metrics on addr:port from a daemon thread."""
    server = make_server(addr, port, health_app(liveness), ThreadingWSGIServer,
                         handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server


def probe(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """True when GET url answers 200 within the timeout."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 (our own URL)
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def main(argv: list[str] | None = None) -> None:
    """`python -m taskmill.health URL`: exit 0 when the URL answers 200, else 1."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m taskmill.health URL")
    raise SystemExit(0 if probe(args[0]) else 1)


if __name__ == "__main__":
    main()
