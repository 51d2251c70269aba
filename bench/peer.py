"""Peer: the same end-to-end run on Taskmill and on Celery, on the same machine in the same
run, and the ratio Taskmill / Celery.

    uv run python -m bench.peer [--tasks 5000] [--clients 8] [--workers 1,4] [--repeat 3]

Celery runs `--concurrency W` prefork processes in two setups: Redis as broker and result
backend (a private redis-server from Debian), and Kafka as broker (kombu's confluentkafka
transport) with a MongoDB result backend, on the Kafka and FerretDB Taskmill itself uses.
Celery's latency is from `send_task()` to the result's `date_done`, Taskmill's from
create_task to end_time, on the same clock.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pymongo
import redis
from confluent_kafka.admin import AdminClient

from bench import e2e
from bench.celery_app import make_app
from bench.figures import save, table
from tests.servers import Servers, free_port
from tests.system import wait_until


@dataclass(frozen=True)
class Backing:
    """Where one Celery setup keeps its queue and its results."""

    broker: str
    backend: str
    queue: str
    mongo_db: str | None = None


@contextmanager
def redis_backing(workdir: Path) -> Iterator[Backing]:
    """A private redis-server as broker and result backend."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port),
                               "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                               "--dir", str(workdir)], stdout=subprocess.DEVNULL)
    try:
        r = redis.Redis.from_url(url)
        wait_until("redis answers", lambda: _pings(r), 30)
        yield Backing(url, url, f"bench_{uuid.uuid4().hex[:8]}")
    finally:
        server.terminate()
        server.wait(30)


@contextmanager
def kafka_mongo_backing(workdir: Path) -> Iterator[Backing]:
    """Taskmill's own Kafka as broker (a fresh topic) and FerretDB as result backend (a fresh db)."""
    where = Servers.from_env()
    unique = uuid.uuid4().hex[:8]
    backing = Backing(f"confluentkafka://{where.kafka}", where.mongo, f"bench_celery_{unique}",
                      f"bench_celery_{unique}")
    try:
        yield backing
    finally:
        AdminClient({"bootstrap.servers": where.kafka}).delete_topics([backing.queue])
        with pymongo.MongoClient(where.mongo) as client:
            client.drop_database(backing.mongo_db)


PEERS = {"celery+redis": redis_backing, "celery+kafka+mongodb": kafka_mongo_backing}


def celery_run(peer: str, tasks: int, clients: int, workers: int) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="taskmill-celery-"))
    try:
        with PEERS[peer](workdir) as backing:
            env = {**os.environ, "BENCH_BROKER_URL": backing.broker, "BENCH_BACKEND_URL": backing.backend,
                   "BENCH_QUEUE": backing.queue, "BENCH_MONGO_DB": backing.mongo_db or ""}
            with (workdir / "worker.log").open("wb") as log:
                worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "bench.celery_app", "worker",
                                           "--concurrency", str(workers), "--pool", "prefork", "--loglevel",
                                           "WARNING", "--without-gossip", "--without-mingle"],
                                          env=env, stdout=log, stderr=subprocess.STDOUT)
            app = make_app(backing.broker, backing.backend, backing.queue, backing.mongo_db)
            try:
                for result in [app.send_task("noop") for _ in range(workers * 2)]:  # warm up
                    result.get(timeout=120)

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
            finally:
                worker.terminate()
                worker.wait(30)
                app.close()
            return e2e.run_figures(tasks, began, spans)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _pings(r: redis.Redis) -> bool:
    try:
        return bool(r.ping())
    except redis.exceptions.ConnectionError:
        return False


def main() -> None:
    args = e2e.options("bench.peer")
    rows = []
    systems = {"taskmill": e2e.one_run,
               **{peer: (lambda *run, peer=peer: celery_run(peer, *run)) for peer in PEERS}}
    for workers in (int(w) for w in args.workers.split(",")):
        for system, run in systems.items():
            rows.append({"system": system, "workers": workers, "tasks": args.tasks,
                         **e2e.repeated(run, args, workers)})
            print(rows[-1], flush=True)
    print(table(f"Taskmill and Celery, no-op task, {args.clients} clients (median of {args.repeat})",
                rows))
    ratios = []
    for workers in sorted({r["workers"] for r in rows}):
        ours = next(r for r in rows if r["workers"] == workers and r["system"] == "taskmill")
        for peer in PEERS:
            theirs = next(r for r in rows if r["workers"] == workers and r["system"] == peer)
            ratios.append({"workers": workers, "versus": peer,
                           "throughput_ratio": ours["tasks_per_s"] / theirs["tasks_per_s"],
                           "p50_latency_ratio": ours["p50_s"] / theirs["p50_s"]})
    print(f"figures: {save('peer', {'repeat': args.repeat, 'rows': rows, 'ratios': ratios})}")
    print(table("Taskmill / Celery", ratios))


if __name__ == "__main__":
    main()
