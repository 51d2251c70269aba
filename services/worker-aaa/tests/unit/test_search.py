import pytest

from taskmill.worker import TaskContext, TaskFailed
from taskmill_worker_aaa.search import search_users


def context() -> TaskContext:
    def no_source():
        raise AssertionError("a refused condition must not reach the data source")

    return TaskContext("ts_aaa_" + "0" * 32, "aaa", 1, "mongo", no_source, lambda f, m: None)


@pytest.mark.parametrize("condition, message", [
    ({"limit": 0}, "limit must be a positive integer"),
    ({"limit": True}, "limit must be a positive integer"),
    ({"limit": "3"}, "limit must be a positive integer"),
    ({"city": {"$ne": None}}, "must be a string, number, boolean or null"),
    ({"city": ["Lima"]}, "must be a string, number, boolean or null"),
    ({"$where": "1"}, "is not a plain field name"),
    ({"a.b": 1}, "is not a plain field name"),
])
def test_conditions_it_cannot_accept_fail_the_task(condition, message):
    """A condition that is not equality filters plus a positive limit fails, saying why."""
    with pytest.raises(TaskFailed, match=message):
        search_users(condition, context())
