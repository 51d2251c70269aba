"""New documents inserted together: the threads of a process inserting at the same moment
share one `insert_many` (a group commit).

A create is one insert of a new task, and each insert is a command, a transaction and a
commit on the engine. The api's threads that create at once queue for one pen: the first
through writes every document gathered so far, those of the threads queued behind it
too, in one unordered `insert_many`; each then learns what became of its own document.
One document's failure is its own (a duplicate _id is refused for that document only, the
others are inserted); a failure of the whole command (the server away) is every
waiting thread's. Nobody waits for company: a thread alone writes at once, so one
client's create costs what it did, and a busy process writes as many documents per
command as it has threads waiting (pymongo splits a group larger than a message).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError, WriteError


@dataclass
class _Insert:
    """A document waiting to be inserted, and what became of it once `done`."""

    doc: dict[str, Any]
    done: bool = False
    failed: BaseException | None = None  # why it was not inserted (or may not be)


class GroupInserts:
    """Inserts into one collection, written in groups by whichever thread gets the pen."""

    def __init__(self, collection: Collection[Any]) -> None:
        self._collection = collection
        self._lock = threading.Lock()  # guards _waiting
        self._writing = threading.Lock()  # the pen: held from taking a group to writing it
        self._waiting: list[_Insert] = []

    def insert(self, doc: dict[str, Any]) -> None:
        """Insert the document (it names its _id) as insert_one would: DuplicateKeyError if
        the _id exists, the command's PyMongoError if the whole write failed."""
        mine = _Insert(doc)
        with self._lock:
            self._waiting.append(mine)
        with self._writing:
            if not mine.done:  # not written by an earlier pen holder: queued, so taken now
                with self._lock:
                    group, self._waiting = self._waiting, []
                _write(self._collection, group)
        if mine.failed is not None:
            raise copy.copy(mine.failed)  # each thread its own (a traceback is per raise)


def _write(collection: Collection[Any], group: Sequence[_Insert]) -> None:
    """Insert the group's documents in one unordered command and mark each done with its
    outcome, whatever happens: a thread whose insert were marked done without one would
    answer that its task exists."""
    try:
        collection.insert_many([insert.doc for insert in group], ordered=False)
    except BulkWriteError as ex:
        _refused(group, ex)
    except PyMongoError as ex:  # the command as a whole: the server away, say
        for insert in group:
            insert.failed = ex
    except Exception as ex:  # refused before it was sent (a document it cannot encode)
        if len(group) == 1:
            group[0].failed = ex
        else:  # whose document? each alone says
            for insert in group:
                _write(collection, [insert])
    except BaseException as ex:  # the thread is being stopped: nobody's insert is known
        for insert in group:
            insert.failed = ex
        raise
    finally:
        for insert in group:
            insert.done = True


def _refused(group: Sequence[_Insert], ex: BulkWriteError) -> None:
    """Give each document the server refused its error (the others are inserted; all are in
    doubt if the write concern failed)."""
    for error in ex.details.get("writeErrors", []):
        kind = DuplicateKeyError if error.get("code") == 11000 else WriteError
        group[error["index"]].failed = kind(error.get("errmsg", "write error"), error.get("code"),
                                            error)
    if ex.details.get("writeConcernErrors"):
        for insert in group:
            insert.failed = insert.failed or ex
