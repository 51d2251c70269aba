"""The peer of the end-to-end benchmark: Celery, as a user picking it would set it up, and a
no-op task. Two setups: Redis as broker and result backend; and Kafka as broker (kombu's
confluentkafka transport) with a MongoDB result backend, on Taskmill's own servers.

The worker runs `celery -A bench.celery_app worker` with BENCH_BROKER_URL, BENCH_BACKEND_URL,
BENCH_QUEUE (and BENCH_MONGO_DB for a MongoDB backend) set; the benchmark's clients make
their own app with `make_app` and `send_task("noop")`.
"""

from __future__ import annotations

import os

from celery import Celery


def make_app(broker: str, backend: str, queue: str, mongo_db: str | None = None) -> Celery:
    app = Celery("taskmill_bench", broker=broker, backend=backend)
    app.conf.update(task_default_queue=queue, worker_hijack_root_logger=False,
                    broker_connection_retry_on_startup=True)
    if mongo_db:
        app.conf.mongodb_backend_settings = {"database": mongo_db}
    return app


app = make_app(os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/0"),
               os.environ.get("BENCH_BACKEND_URL", "redis://127.0.0.1:6379/0"),
               os.environ.get("BENCH_QUEUE", "bench"), os.environ.get("BENCH_MONGO_DB"))


@app.task(name="noop")
def noop() -> dict[str, int]:
    return {}
