"""The api's own cost per request, without an HTTP server: the Falcon app called in this
process with a WSGI environ, on the real store, beside a trivial Falcon route and a bare
store command.

    uv run python -m bench.inprocess [--requests 2000] [--repeat 3]

CPU is the process's (every thread: the count writer and shared inserts included), user +
system, per request; the median of `repeat` rounds. What gunicorn adds per request is
bench.api's trivial route (its CPU per request under the same gunicorn) minus the trivial
route here. The audit log is formatted and written as in the api, to /dev/null.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from itertools import repeat
from typing import Any

from bench import stack
from bench.ceiling import app as trivial_app
from bench.figures import save, table
from taskmill.logs import setup_logging
from taskmill.schema import Status
from taskmill.store import TaskStore
from taskmill_api.app import create_app
from tests.system import TOKEN

Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Any]
WARM_UP = 200  # calls of each kind before the rounds (connections open, code warm)


def post(app: Wsgi, path: str, body: bytes) -> str:
    """Call the app as a server would for one POST; its status line. The environ is the few
    keys a server sets, built here rather than by falcon.testing.create_environ, whose
    own cost would be counted in every request (the trivial route costs 7 µs with this)."""
    answer: list[str] = []
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": "",
               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
               "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
               "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
               "HTTP_AUTHORIZATION": TOKEN}
    b"".join(app(environ, lambda status, headers, exc_info=None: answer.append(status)))
    return answer[0]


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def per_call(calls: Iterator[Callable[[], Any]], n: int) -> tuple[float, float]:
    """CPU and wall microseconds per call of the next n calls."""
    cpu, wall = cpu_s(), time.perf_counter()
    for _ in range(n):
        next(calls)()
    return (cpu_s() - cpu) * 1e6 / n, (time.perf_counter() - wall) * 1e6 / n


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.inprocess")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n, rounds = args.requests, args.repeat
    setup_logging("api")
    with open(os.devnull, "w") as devnull, stack.store("bench-inprocess") as (store, config):
        logging.getLogger().handlers[0].setStream(devnull)  # type: ignore[attr-defined]
        rows = measure(store, create_app(config, store), config.services["slow"], n, rounds)
    print(table(f"the api in process, CPU and wall µs per request (median of {rounds} rounds "
                f"of {n})", rows))
    print(f"figures: {save('inprocess', {'requests': n, 'repeat': rounds, 'rows': rows})}")


def measure(store: TaskStore, app: Wsgi, service: Any, n: int, rounds: int) -> list[dict[str, Any]]:
    # Tasks for the pairs (a warm-up, then the rounds): started and published (waiting),
    # the first one running.
    ids = [store.create(service, {}, start=True)["task_id"] for _ in range(WARM_UP + n * rounds + 1)]
    while store.outbox.mark_published(store.outbox.due(100, service.name)):
        pass
    store.report(ids[0], Status.RUNNING, attempt=1)
    create = json.dumps({"data": {"service": service.name, "condition": {}, "start": True}}).encode()

    def pairs() -> Iterator[Callable[[], Any]]:
        for done, started in zip(ids, ids[1:], strict=False):
            body = json.dumps({"data": [
                {"task_id": done, "status": "finished", "attempt": 1, "result": {"ok": True}},
                {"task_id": started, "status": "running", "attempt": 1, "worker": "bench"}]}).encode()
            yield lambda body=body: checked(post(app, "/api/update_status_task", body))

    def checked(status: str) -> None:
        if not status.startswith("200"):
            raise SystemExit(f"the api answered {status}")

    cases = {
        "trivial Falcon route": repeat(lambda: post(trivial_app, "/ok", b"{}")),
        "store command alone (ping)": repeat(store.ping),
        "create_task (with start)": repeat(lambda: checked(post(app, "/api/create_task", create))),
        "a worker's pair of reports": pairs(),
    }
    rows = []
    for name, calls in cases.items():
        per_call(calls, WARM_UP)
        runs = [per_call(calls, n) for _ in range(rounds)]
        rows.append({"request": name, "cpu_us": statistics.median(r[0] for r in runs),
                     "min": min(r[0] for r in runs), "max": max(r[0] for r in runs),
                     "wall_us": statistics.median(r[1] for r in runs)})
        print(rows[-1], flush=True)
    return rows


if __name__ == "__main__":
    main()
