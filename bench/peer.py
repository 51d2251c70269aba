"""Peer: the same end-to-end run on Taskmill and on Celery (Redis broker and backend), on
the same machine in the same run, and the ratio Taskmill / Celery.

    uv run python -m bench.peer [--tasks 1000] [--clients 8] [--workers 1,4] [--repeat 3]

Celery runs `--concurrency W` prefork processes against a private redis-server (Debian);
its latency is from `delay()` to the result's `date_done`, Taskmill's from create_task to
end_time, on the same clock.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import redis

from bench import e2e
from bench.celery_app import make_app
from bench.figures import save, table
from tests.servers import free_port
from tests.system import wait_until


def celery_run(tasks: int, clients: int, workers: int) -> dict[str, float]:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    workdir = Path(tempfile.mkdtemp(prefix="taskmill-celery-"))
    queue = f"bench_{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "BENCH_REDIS_URL": url, "BENCH_QUEUE": queue}
    server = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port),
                               "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                               "--dir", str(workdir)], stdout=subprocess.DEVNULL)
    worker = None
    try:
        r = redis.Redis.from_url(url)
        wait_until("redis answers", lambda: _pings(r), 30)
        with (workdir / "worker.log").open("wb") as log:
            worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "bench.celery_app", "worker",
                                       "--concurrency", str(workers), "--pool", "prefork", "--loglevel",
                                       "WARNING", "--without-gossip", "--without-mingle"],
                                      env=env, stdout=log, stderr=subprocess.STDOUT)
        app = make_app(url, queue)
        for result in [app.send_task("noop") for _ in range(workers * 2)]:  # warm up
            result.get(timeout=60)

        def send(_: int) -> tuple[object, datetime]:
            sent = datetime.now(UTC)
            return app.send_task("noop"), sent

        began = datetime.now(UTC)
        with ThreadPoolExecutor(clients) as pool:
            sent = list(pool.map(send, range(tasks)))
        spans = []
        for result, at in sent:
            result.get(timeout=60 + tasks)
            done = result.date_done
            spans.append((at, done if done.tzinfo else done.replace(tzinfo=UTC)))
        app.close()
        return e2e.run_figures(tasks, began, spans)
    finally:
        for proc in (worker, server):
            if proc is not None:
                proc.terminate()
                proc.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)


def _pings(r: redis.Redis) -> bool:
    try:
        return bool(r.ping())
    except redis.exceptions.ConnectionError:
        return False


def main() -> None:
    args = e2e.options("bench.peer")
    rows = []
    for workers in (int(w) for w in args.workers.split(",")):
        for system, run in (("taskmill", e2e.one_run), ("celery+redis", celery_run)):
            rows.append({"system": system, "workers": workers, "tasks": args.tasks,
                         **e2e.repeated(run, args, workers)})
            print(rows[-1], flush=True)
    print(table(f"Taskmill and Celery, no-op task, {args.clients} clients (median of {args.repeat})",
                rows))
    ratios = []
    for workers in sorted({r["workers"] for r in rows}):
        ours, theirs = (next(r for r in rows if r["workers"] == workers and r["system"] == s)
                        for s in ("taskmill", "celery+redis"))
        ratios.append({"workers": workers, "throughput_ratio": ours["tasks_per_s"] / theirs["tasks_per_s"],
                       "p50_latency_ratio": ours["p50_s"] / theirs["p50_s"]})
    print(f"figures: {save('peer', {'repeat': args.repeat, 'rows': rows, 'ratios': ratios})}")
    print(table("Taskmill / Celery", ratios))


if __name__ == "__main__":
    main()
