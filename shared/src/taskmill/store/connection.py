"""The connection to the task store's MongoDB, and its failures as DependencyUnavailable."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import pymongo
from pymongo.collection import Collection
from pymongo.errors import ConnectionFailure, ExecutionTimeout, OperationFailure
from pymongo.monitoring import CommandListener

from taskmill.config import MongoConfig
from taskmill.errors import DependencyUnavailable

Task = dict[str, Any]
T = TypeVar("T")

# PostgreSQL's deadlock_detected (SQLSTATE 40P01) as DocumentDB reports it. Two updates of
# many documents that lock shared rows in different orders deadlock there, and PostgreSQL
# rolls one of them back whole; MongoDB never reports this (its multi-document updates take
# no locks across documents).
DEADLOCK = 16908292
DEADLOCK_TRIES = 5


def connect(config: MongoConfig, appname: str = "taskmill",
            listeners: Sequence[CommandListener] = ()) -> Collection[Task]:
    """Return the tasks collection, with timeouts that keep every call bounded.

    Retryable writes are pymongo's default (on); a `retryWrites=false` in the URI turns
    them off. They apply on a replica set; a standalone server has none to offer.
    """
    client: pymongo.MongoClient[Task] = pymongo.MongoClient(
        config.uri,
        appname=appname,
        tz_aware=True,
        serverSelectionTimeoutMS=config.timeout_ms,
        connectTimeoutMS=config.timeout_ms,
        socketTimeoutMS=config.timeout_ms * 2,
        event_listeners=list(listeners),
    )
    return client[config.dbname][config.collection]


@contextmanager
def unavailable_as_error() -> Iterator[None]:
    """Raise DependencyUnavailable for a server that cannot be reached in time."""
    try:
        yield
    except (ConnectionFailure, ExecutionTimeout) as ex:
        raise DependencyUnavailable(f"MongoDB is unavailable: {type(ex).__name__}") from ex


def whole_or_again(write: Callable[[], T]) -> T:
    """Run a write of many documents; do it again when the engine rolled it back whole as
    a deadlock's victim (a few times: the other writer goes on meanwhile)."""
    for _ in range(DEADLOCK_TRIES - 1):
        try:
            return write()
        except OperationFailure as ex:
            if ex.code != DEADLOCK:
                raise
    return write()
