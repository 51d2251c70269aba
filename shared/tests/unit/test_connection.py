from typing import Any

import pytest
from pymongo import DeleteOne, UpdateOne
from pymongo.errors import BulkWriteError
from pymongo.results import BulkWriteResult

from taskmill.store.connection import DEADLOCK, DEADLOCK_TRIES, each_by_id


class Engine:
    """A collection whose bulk writes fail as DocumentDB's do when PostgreSQL picks them as a
    deadlock's victim: the writes before the failing one stand, the rest are not made."""

    def __init__(self, fail_at: list[int], code: int = DEADLOCK) -> None:
        self.fail_at = fail_at  # the index of the failing write, one per call, while any
        self.code = code
        self.made: list[Any] = []
        self.calls = 0

    def bulk_write(self, writes: list[Any], ordered: bool) -> BulkWriteResult:
        assert ordered
        self.calls += 1
        if self.fail_at:
            index = self.fail_at.pop(0)
            self.made += writes[:index]
            raise BulkWriteError({"writeErrors": [{"index": index, "code": self.code,
                                                   "errmsg": "deadlock detected"}],
                                  "nModified": index, "nRemoved": 0})
        self.made += writes
        return BulkWriteResult({"nModified": len(writes), "nRemoved": 0}, acknowledged=True)


def updates(*ids: str) -> dict[str, UpdateOne]:
    return {i: UpdateOne({"_id": i}, {"$inc": {"n": 1}}) for i in ids}


def test_the_writes_go_in_id_order_in_one_bulk_write():
    engine = Engine([])
    writes = updates("c", "a", "b")
    assert each_by_id(engine, writes) == 3
    assert engine.made == [writes["a"], writes["b"], writes["c"]]
    assert engine.calls == 1


def test_a_deadlocks_victim_is_done_again_from_where_it_stopped():
    engine = Engine([2, 0, 1])
    writes = updates("a", "b", "c", "d")
    assert each_by_id(engine, writes) == 4
    assert engine.made == [writes[i] for i in "abcd"]  # each write made once
    assert engine.calls == 4


def test_a_write_that_keeps_deadlocking_raises_after_its_tries():
    engine = Engine([0] * DEADLOCK_TRIES)
    with pytest.raises(BulkWriteError):
        each_by_id(engine, updates("a"))
    assert engine.calls == DEADLOCK_TRIES


def test_any_other_failure_is_not_repeated():
    engine = Engine([1], code=11000)
    with pytest.raises(BulkWriteError):
        each_by_id(engine, {"a": DeleteOne({"_id": "a"}), "b": DeleteOne({"_id": "b"})})
    assert engine.calls == 1


def test_nothing_to_write_sends_nothing():
    engine = Engine([])
    assert each_by_id(engine, {}) == 0
    assert engine.calls == 0
