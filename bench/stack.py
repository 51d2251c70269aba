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


def fresh() -> tuple[str, str, Servers, Path]:
    """What a benchmark's own Taskmill is named by: a unique suffix, its database, the
    servers it runs on (from the environment) and a new working folder."""
    unique = uuid.uuid4().hex[:10]
    return unique, f"bench_{unique}", Servers.from_env(), Path(tempfile.mkdtemp(prefix="taskmill-bench-"))


@contextmanager
def system(workers: int = 0, slow_partitions: int | None = None,
           **settings: object) -> Iterator[tuple[System, pymongo.collection.Collection]]:
    """A fresh Taskmill with `workers` no-op (`slow`) worker processes and its tasks collection
    (`slow_partitions`: the slow topic made beforehand with that many partitions, whatever
    the dispatcher would make)."""
    unique, db, where, workdir = fresh()
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
    unique, db, where, workdir = fresh()
    env, _, _ = environment(workdir, where, db, unique)
    config = load_config(env["TASKMILL_CONFIG"], env)
    opened = TaskStore.open(config, appname=appname)
    try:
        opened.ensure_indexes()
        yield opened, config
    finally:
        opened.close()
        with pymongo.MongoClient(where.mongo) as admin:
            admin.drop_database(db)
