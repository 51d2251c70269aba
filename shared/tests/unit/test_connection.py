import pytest
from pymongo.errors import OperationFailure

from taskmill.store.connection import DEADLOCK, DEADLOCK_TRIES, whole_or_again


def failing(times: int, code: int):
    calls: list[int] = []

    def write() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise OperationFailure("deadlock detected", code=code)
        return "done"

    return write, calls


def test_a_write_rolled_back_as_a_deadlocks_victim_is_done_again():
    write, calls = failing(DEADLOCK_TRIES - 1, DEADLOCK)
    assert whole_or_again(write) == "done"
    assert len(calls) == DEADLOCK_TRIES


def test_a_write_that_keeps_deadlocking_raises_after_its_tries():
    write, calls = failing(DEADLOCK_TRIES, DEADLOCK)
    with pytest.raises(OperationFailure):
        whole_or_again(write)
    assert len(calls) == DEADLOCK_TRIES


def test_any_other_failure_is_not_repeated():
    write, calls = failing(1, 11000)
    with pytest.raises(OperationFailure):
        whole_or_again(write)
    assert len(calls) == 1
