"""Peer: the same end-to-end run on Taskmill and on Celery (Redis broker and backend), on
the same machine in the same run, and the ratio Taskmill / Celery.

    uv run python -m bench.peer [--tasks 1000] [--clients 8] [--workers 1,4] [--repeat 3]

Celery runs `--concurrency W` prefork processes against a private redis-server (Debian);
its latency is from `delay()` to the result's `date_done`, Taskmill's from create_task to
end_time, on the same clock.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import redis

from bench import e2e
from bench.celery_app import make_app
from bench.figures import percentile, save, table
from tests.servers import free_port


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
        _until(lambda: _pings(r), "redis answers")
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
        ends = []
        for result, at in sent:
            result.get(timeout=60 + tasks)
            done = result.date_done
            done = done if done.tzinfo else done.replace(tzinfo=UTC)
            ends.append((done, (done - at).total_seconds()))
        app.close()
        latencies = [latency for _, latency in ends]
        elapsed = (max(done for done, _ in ends) - began).total_seconds()
        return {"tasks_per_s": tasks / elapsed, "p50_s": statistics.median(latencies),
                "p99_s": percentile(latencies, 99)}
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


def _until(condition, what: str, timeout_s: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"not true after {timeout_s}s: {what}")
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.peer")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", default="1,4")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for workers in (int(w) for w in args.workers.split(",")):
        for system, run in (("taskmill", e2e.one_run), ("celery+redis", celery_run)):
            runs = [run(args.tasks, args.clients, workers) for _ in range(args.repeat)]
            rate = [r["tasks_per_s"] for r in runs]
            rows.append({"system": system, "workers": workers, "tasks": args.tasks,
                         "tasks_per_s": statistics.median(rate), "min": min(rate), "max": max(rate),
                         "p50_s": statistics.median(r["p50_s"] for r in runs),
                         "p99_s": statistics.median(r["p99_s"] for r in runs)})
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
