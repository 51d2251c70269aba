"""The health-and-metrics port of the dispatcher and the workers."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter

from taskmill.health import Liveness, health_app, probe, serve


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def call(app, path: str) -> tuple[str, bytes]:
    seen: dict[str, str] = {}
    body = b"".join(app({"PATH_INFO": path, "REQUEST_METHOD": "GET"},
                        lambda status, headers: seen.update(status=status)))
    return seen["status"], body


def test_liveness_lapses_when_the_loop_stops_beating() -> None:
    """It is alive up to stall_s after the last beat, dead after, alive again on a beat."""
    clock = Clock()
    liveness = Liveness(stall_s=30, clock=clock)
    clock.now += 30
    assert liveness.alive()
    clock.now += 1
    assert not liveness.alive()
    liveness.beat()
    assert liveness.alive()


def test_healthz_answers_503_with_the_silence_once_stalled() -> None:
    """/healthz is 200 while alive, 503 naming the seconds of silence once stalled."""
    clock = Clock()
    liveness = Liveness(stall_s=10, clock=clock)
    app = health_app(liveness, CollectorRegistry())
    assert call(app, "/healthz") == ("200 OK", b"ok\n")
    clock.now += 42
    assert call(app, "/healthz") == ("503 Service Unavailable", b"stalled 42s\n")


def test_metrics_served_and_other_paths_404() -> None:
    """/metrics is the registry's exposition; anything else is 404, not metrics."""
    registry = CollectorRegistry()
    Counter("taskmill_probe_total", "a test counter", registry=registry).inc(3)
    app = health_app(Liveness(stall_s=10), registry)
    status, body = call(app, "/metrics")
    assert status.startswith("200") and b"taskmill_probe_total 3.0" in body
    assert call(app, "/")[0].startswith("404")
    assert call(app, "/readyz")[0].startswith("404")


def test_probe_over_a_real_socket() -> None:
    """The HEALTHCHECK probe exits on the answer of a real server: 200 yes, 503 or none no."""
    clock = Clock()
    liveness = Liveness(stall_s=5, clock=clock)
    server = serve(0, "127.0.0.1", liveness)
    try:
        url = f"http://127.0.0.1:{server.server_port}/healthz"
        assert probe(url)
        clock.now += 6
        assert not probe(url)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url, timeout=3)
        assert err.value.code == 503
        err.value.close()
    finally:
        server.shutdown()
        server.server_close()
    assert not probe(url, timeout_s=1)
