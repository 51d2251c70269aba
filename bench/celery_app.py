"""The peer of the end-to-end benchmark: Celery with Redis as broker and result backend,
as a user picking Celery would set it up, and a no-op task.

The worker runs `celery -A bench.celery_app worker` with BENCH_REDIS_URL and BENCH_QUEUE
set; the benchmark's clients make their own app with `make_app` and `send_task("noop")`.
"""

from __future__ import annotations

import os

from celery import Celery


def make_app(url: str, queue: str) -> Celery:
    app = Celery("taskmill_bench", broker=url, backend=url)
    app.conf.update(task_default_queue=queue, worker_hijack_root_logger=False,
                    broker_connection_retry_on_startup=True)
    return app


app = make_app(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
               os.environ.get("BENCH_QUEUE", "bench"))


@app.task(name="noop")
def noop() -> dict[str, int]:
    return {}
