import pytest

from taskmill.worker import TaskContext, TaskFailed
from taskmill_worker_bbb.report import GROUP_KEYS, ONE_GROUP, QUERIES, orders_report


def context() -> TaskContext:
    def no_source():
        raise AssertionError("a refused condition must not reach the data source")

    return TaskContext("ts_bbb_" + "0" * 32, "bbb", 1, "mysql", no_source, lambda f, m: None)


@pytest.mark.parametrize("condition, message", [
    ({"group_by": "day"}, "group_by must be one of country, status, month"),
    ({"country": 7}, "country must be a string"),
    ({"since": "2026-02-30"}, "since must be a date YYYY-MM-DD"),
    ({"until": "yesterday"}, "until must be a date YYYY-MM-DD"),
    ({"order by": "1; DROP TABLE orders"}, "unknown condition field"),
    ({"pause_s": 61}, "pause_s must be a number of seconds from 0 to 60"),
    ({"pause_s": "1"}, "pause_s must be a number"),
    ({"pause_s": True}, "pause_s must be a number"),
])
def test_conditions_it_cannot_accept_fail_the_task(condition, message):
    """Bad conditions fail the task before any SQL runs."""
    with pytest.raises(TaskFailed, match=message):
        orders_report(condition, context())


def test_queries_take_every_value_as_a_bound_parameter():
    """The SQL is fixed text: the condition's values only ever appear as parameters."""
    for sql in [*QUERIES.values(), *GROUP_KEYS.values(), *ONE_GROUP.values()]:
        for name in ("country", "status", "since", "until"):
            assert f"%({name})s" in sql
    assert all("%(key)s" in sql for sql in ONE_GROUP.values())
