"""A fresh Taskmill for one benchmark run, on the servers scripts/bench.sh exports."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pymongo
from confluent_kafka.admin import AdminClient, NewTopic

from taskmill.config import Config, load_config
from taskmill.store import TaskStore
from tests.servers import Servers, free_port
from tests.system import System, environment, launch, topic_name


@contextmanager
def system(workers: int = 0, slow_partitions: int | None = None,
           **settings: object) -> Iterator[tuple[System, pymongo.collection.Collection]]:
    """A fresh Taskmill with `workers` no-op (`slow`) worker processes and its tasks collection
    (`slow_partitions`: the slow topic made beforehand with that many partitions, whatever
    the dispatcher would make)."""
    unique = uuid.uuid4().hex[:10]
    db = f"bench_{unique}"
    where = Servers.from_env()
    workdir = Path(tempfile.mkdtemp(prefix="taskmill-bench-"))
    if slow_partitions is not None:
        topic = NewTopic(topic_name("slow", unique), num_partitions=slow_partitions, replication_factor=-1)
        admin = AdminClient({"bootstrap.servers": where.kafka})
        admin.create_topics([topic])[topic.topic].result(30)
    running = launch(workdir, where, db, unique, workers=(), metrics=True, **settings)  # type: ignore[arg-type]
    client: pymongo.MongoClient = pymongo.MongoClient(where.mongo, tz_aware=True)
    try:
        for i in range(workers):
            running.start_worker("slow", f"worker-slow-{i}", metrics_port=free_port())
        yield running, client[db][db]
    finally:
        running.shutdown()
        client.drop_database(db)
        client.close()


@contextmanager
def store(appname: str) -> Iterator[tuple[TaskStore, Config]]:
    """The task store alone, on a fresh database with its indexes, and the config of the
    system it belongs to; the database is dropped afterwards."""
    unique = uuid.uuid4().hex[:10]
    where = Servers.from_env()
    env, _, _ = environment(Path(tempfile.mkdtemp(prefix="taskmill-bench-")), where,
                            f"bench_{unique}", unique)
    config = load_config(env["TASKMILL_CONFIG"], env)
    opened = TaskStore.open(config, appname=appname)
    try:
        opened.ensure_indexes()
        yield opened, config
    finally:
        opened.close()
        with pymongo.MongoClient(where.mongo) as admin:
            admin.drop_database(config.mongo.dbname)
