"""The connection to the task store's MongoDB, and its failures as DependencyUnavailable."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pymongo
from pymongo import DeleteOne, UpdateOne
from pymongo.collection import Collection
from pymongo.cursor import Cursor
from pymongo.errors import BulkWriteError, ConnectionFailure, DuplicateKeyError, ExecutionTimeout
from pymongo.monitoring import CommandListener

from taskmill.config import MongoConfig
from taskmill.errors import DependencyUnavailable

Task = dict[str, Any]

# PostgreSQL's deadlock_detected (SQLSTATE 40P01) as DocumentDB reports it: a write of many
# documents holds each one's row lock until the whole command ends, so two that lock shared
# documents in different orders deadlock there, and PostgreSQL rolls back the write that
# was waiting; MongoDB never reports this (it takes no locks across documents).
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


class Created:
    """The documents of a collection (by _id) this process knows to exist: each is inserted
    (with `fields`) before the process first updates it, so that it is only ever updated,
    never upserted. On the local engine two upserts of one new _id at once may both insert,
    one overwriting the other, and a write is lost (documentdb/documentdb#295; measured: 39
    of 200 rounds of eight concurrent `$inc` upserts); two inserts of one _id race safely
    on the primary index."""

    def __init__(self, collection: Collection[Any], fields: Mapping[str, Any] | None = None) -> None:
        self._collection = collection
        self._fields = dict(fields or {})
        self._known: set[str] = set()

    def ensure(self, ids: Iterable[str]) -> None:
        """Insert each of these documents this process has not seen yet (raises PyMongoError)."""
        for doc_id in ids:
            if doc_id not in self._known:
                try:
                    self._collection.insert_one({"_id": doc_id, **self._fields})
                except DuplicateKeyError:
                    pass  # another process (or thread) was first
                self._known.add(doc_id)


def one_batch(cursor: Cursor[Task], n: int) -> Cursor[Task]:
    """The cursor's first n documents, in a single reply: no getMore, no cursor left open
    (the local engine serves each getMore of a limited find on a new PostgreSQL connection,
    14 ms; measured). A negative limit alone asks MongoDB for that; the local engine then
    answers at most 101 documents (the default first batch), so the batch size says n too."""
    return cursor.limit(-n).batch_size(n)


def each_by_id(collection: Collection[Any], writes: Mapping[str, UpdateOne[Any] | DeleteOne]) -> int:
    """Make each write (an update or delete whose filter names the _id it is keyed by) in
    one ordered bulk write; return how many documents changed (updated or deleted).

    Not update_many or delete_many with `{"_id": {"$in": ids}}`: DocumentDB serves such a
    filter from the collection's other indexes and reads every document they match (a whole
    backlog of started tasks: 22 ms at 13,000, growing with it; measured), where a write per
    _id is one primary-key lookup, on MongoDB too. The writes go in _id order, so batches
    lock the documents they share in the same order. One PostgreSQL still picks as a
    deadlock's victim (against a writer in another order) stops there, the writes before it
    standing: it is done again from where it stopped, a few times.
    """
    ordered = [writes[task_id] for task_id in sorted(writes)]
    changed = 0
    for tries in range(1, DEADLOCK_TRIES + 1):
        if not ordered:
            break
        try:
            done = collection.bulk_write(ordered, ordered=True)
            return changed + done.modified_count + done.deleted_count
        except BulkWriteError as ex:
            [error] = ex.details["writeErrors"]  # ordered: the first failure ends the write
            if error["code"] != DEADLOCK or tries == DEADLOCK_TRIES:
                raise
            changed += ex.details["nModified"] + ex.details["nRemoved"]
            ordered = ordered[error["index"]:]
    return changed
