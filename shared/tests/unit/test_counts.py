"""The task counts' writes: moves are gathered until a flush writes them all in one command;
written at once (flush_s 0), the moves made while a write is in flight share the next one
(a group commit)."""

import threading
from typing import Any

from pymongo import UpdateOne
from pymongo.results import BulkWriteResult

from taskmill.store.counts import TaskCounts
from tests.system import wait_until


class Counts:
    """A counts collection whose first bulk write waits until the test lets it finish."""

    def __init__(self) -> None:
        self.writes: list[list[UpdateOne]] = []  # each bulk write, once made
        self.first_begun = threading.Event()
        self.let_first_end = threading.Event()

    def insert_one(self, doc: dict[str, Any]) -> None:
        pass

    def bulk_write(self, updates: list[Any], ordered: bool) -> BulkWriteResult:
        if not self.first_begun.is_set():
            self.first_begun.set()
            assert self.let_first_end.wait(10)
        self.writes.append(updates)
        return BulkWriteResult({"nModified": len(updates), "nRemoved": 0}, acknowledged=True)


def created(*services: str) -> list[UpdateOne]:
    """The bulk write of one new task of each service."""
    return [UpdateOne({"_id": s}, {"$inc": {"ready": 1, "version": 1}}) for s in services]


class Tasks:
    name = "tasks"

    def __init__(self, counts: Counts) -> None:
        self.database = {"tasks_counts": counts}


def test_moves_made_while_a_write_is_in_flight_are_written_together_before_each_returns():
    collection = Counts()
    counts = TaskCounts(Tasks(collection), flush_s=0)  # type: ignore[arg-type]
    returned: dict[str, list[list[UpdateOne]]] = {}

    def move(service: str) -> None:
        counts.moved(service, None, "ready")
        returned[service] = list(collection.writes)  # the writes made when it returned

    first = threading.Thread(target=move, args=("a",))
    first.start()
    assert collection.first_begun.wait(10)
    others = [threading.Thread(target=move, args=(s,)) for s in ("d", "b", "c")]
    for thread in others:
        thread.start()
    wait_until("the three moves gathered", lambda: len(counts._gathered) == 3, 10)
    assert returned == {}  # nobody returns before its move is written
    collection.let_first_end.set()
    for thread in (first, *others):
        thread.join(10)
    assert collection.writes == [created("a"), created("b", "c", "d")]
    assert returned["a"] == [created("a")]
    assert all(returned[s] == collection.writes for s in "bcd")


def test_moves_are_gathered_until_a_flush_writes_them_all_in_one_command():
    collection = Counts()
    collection.first_begun.set()  # no write waits
    counts = TaskCounts(Tasks(collection), flush_s=3600)  # type: ignore[arg-type]
    counts.moved("b", "ready", "running")
    counts.moved("a", None, "ready")
    assert collection.writes == []  # gathered for the flusher
    counts.flush()
    both = [created("a") + [UpdateOne({"_id": "b"}, {"$inc": {"ready": -1, "running": 1, "version": 1}})]]
    assert collection.writes == both
    counts.close()
    assert collection.writes == both  # nothing was left to write


def test_the_flusher_writes_every_batch_on_its_own_after_a_reader_flushed_one_early():
    """The flusher is woken by the first move of a batch only; a batch that a reader's
    flush emptied while the flusher waited, then began again, is still written by it."""
    collection = Counts()
    collection.first_begun.set()  # no write waits
    counts = TaskCounts(Tasks(collection), flush_s=0.2)  # type: ignore[arg-type]

    def written(*services: str) -> bool:
        updates = [update for write in collection.writes for update in write]
        return all(created(s)[0] in updates for s in services)

    counts.moved("a", None, "ready")
    counts.flush()  # a reader's flush, while the flusher waits out flush_s
    assert written("a")
    counts.moved("b", None, "ready")
    counts.moved("c", None, "ready")
    wait_until("the flusher wrote b and c", lambda: written("b", "c"), 10)
    counts.moved("d", None, "ready")  # a batch begun after the flusher's write
    wait_until("the flusher wrote d", lambda: written("d"), 10)
    writes = len(collection.writes)
    counts.close()
    assert len(collection.writes) == writes  # nothing was left to write
