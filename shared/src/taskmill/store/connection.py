"""The connection to the task store's MongoDB, and its failures as DependencyUnavailable."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pymongo
from pymongo.collection import Collection
from pymongo.errors import ConnectionFailure, ExecutionTimeout
from pymongo.monitoring import CommandListener

from taskmill.config import MongoConfig
from taskmill.errors import DependencyUnavailable

Task = dict[str, Any]


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
