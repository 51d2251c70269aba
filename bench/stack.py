"""The servers a benchmark talks to, from the environment scripts/bench.sh sets."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pymongo

from tests.system import Servers, System, launch


def servers() -> Servers:
    mongo = os.environ.get("MONGO_URI", "mongodb://127.0.0.1:27017/")
    mysql = {"host": os.environ.get("SOURCE_MYSQL_HOST", "127.0.0.1"),
             "port": int(os.environ.get("SOURCE_MYSQL_PORT", "3306")),
             "user": os.environ.get("SOURCE_MYSQL_USER", "taskmill"),
             "password": os.environ.get("SOURCE_MYSQL_PASSWORD", "")}
    return Servers(os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"), mongo, mongo, mysql)


@contextmanager
def system(workers: int = 0, **settings: object) -> Iterator[tuple[System, pymongo.collection.Collection]]:
    """A fresh Taskmill with `workers` no-op (`slow`) worker processes and its tasks collection."""
    unique = uuid.uuid4().hex[:10]
    db = f"bench_{unique}"
    where = servers()
    workdir = Path(tempfile.mkdtemp(prefix="taskmill-bench-"))
    running = launch(workdir, where, db, unique, workers=(), **settings)  # type: ignore[arg-type]
    client: pymongo.MongoClient = pymongo.MongoClient(where.mongo, tz_aware=True)
    try:
        for i in range(workers):
            running.start_worker("slow", f"worker-slow-{i}")
        yield running, client[db][db]
    finally:
        running.shutdown()
        client.drop_database(db)
        client.close()
