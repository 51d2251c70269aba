"""Reports sent together (`TaskStore.report_each`): a worker's pair is one write, and every
report of a list is applied and counted exactly as if it came alone."""

from dataclasses import replace
from typing import Any

import pytest
from pymongo import monitoring

from taskmill.config import ServiceConfig
from taskmill.errors import StateConflict, TaskNotFound
from taskmill.schema import Status
from taskmill.store import TaskStore, connect
from taskmill.store.reports import Report
from tests.helpers import Clock, at_once, task_in

pytestmark = pytest.mark.integration

AAA = ServiceConfig("aaa", "mongo", "mq_aaa", "c_aaa")


class Commands(monitoring.CommandListener):
    """The names of the commands a store sends."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
def commands() -> Commands:
    return Commands()


@pytest.fixture
def store(make_config, commands: Commands):
    config = make_config()
    store = TaskStore(connect(config.mongo, listeners=[commands]), config.lifecycle, clock=Clock())
    store.ensure_indexes()
    yield store
    store.close()


def pair(finished: str, running: str) -> list[Report]:
    """A worker's pair: one run's end, the next one's start."""
    return [Report(finished, Status.FINISHED, "done", {"answer": 42}, attempt=1, worker="w1"),
            Report(running, Status.RUNNING, "go", attempt=1, worker="w1")]


def stored(store: TaskStore, task_id: str) -> dict[str, Any]:
    """A task's document but for what names it or marks the write that changed it."""
    task = store.get(task_id)
    return {k: v for k, v in task.items() if k not in ("_id", "task_id", "report_token")}


def outcome(answer: Any) -> Any:
    """What a report's answer says: the status it left, or the kind of refusal."""
    return type(answer).__name__ if isinstance(answer, Exception) else answer["status"]


def alone(store: TaskStore, ask: Report) -> Any:
    """A report sent alone: its answer, or its refusal."""
    try:
        return store.report(ask.task_id, ask.status, ask.message, ask.result, ask.attempt,
                            ask.retry, ask.worker)
    except (TaskNotFound, StateConflict) as refusal:
        return refusal


def test_a_workers_pair_is_one_write_and_leaves_its_tasks_as_two_reports_alone(
        store: TaskStore, commands: Commands):
    ended, next_one = task_in(store, AAA, Status.RUNNING), task_in(store, AAA, Status.WAITING)
    twins = task_in(store, AAA, Status.RUNNING), task_in(store, AAA, Status.WAITING)
    store._clock.advance(1)
    commands.names.clear()
    answers = store.report_each(pair(ended, next_one))
    assert commands.names == ["update"]
    assert [(a["task_id"], a["status"]) for a in answers] == [(ended, "finished"), (next_one, "running")]
    for ask in pair(*twins):
        alone(store, ask)
    assert stored(store, ended) == stored(store, twins[0])
    assert stored(store, next_one) == stored(store, twins[1])
    assert store.get(ended)["result"] == {"answer": 42}
    assert store.get(next_one)["worker"] == "w1"
    assert store.counts.drift() == {}
    assert store.counts.total("aaa", "running") == 2 and store.counts.total("aaa", "finished") == 2


def test_every_report_in_a_list_is_answered_and_counted_as_if_alone(store: TaskStore):
    """From each state, each report a worker can send (and a stale attempt, an unknown task,
    a run not yet confirmed published, a run asked to stop), beside a usual report of
    another task: the same answer and the same task as sent alone, and counts that agree
    with the tasks."""
    cases: list[tuple[str, Status, int]] = []
    for current in (Status.WAITING, Status.RUNNING, Status.FINISHED, Status.FAILED):
        for reported in (Status.RUNNING, Status.FINISHED, Status.FAILED):
            cases.append((current.value, reported, 1))
    cases += [("running", Status.FINISHED, 2), ("unknown", Status.FINISHED, 1),
              ("published?", Status.RUNNING, 1), ("asked to stop", Status.FINISHED, 1),
              ("asked to stop", Status.RUNNING, 1), ("retry", Status.FAILED, 1)]
    for current, reported, attempt in cases:
        partner = task_in(store, AAA, Status.WAITING)
        listed, single = make(store, current), make(store, current)
        ask = Report(listed, reported, "m", {} if reported == Status.FINISHED else None,
                     attempt, retry=current == "retry", worker="w1")
        answers = store.report_each([ask, Report(partner, Status.RUNNING, attempt=1, worker="w1")])
        by_itself = alone(store, replace(ask, task_id=single))
        assert (current, outcome(answers[0])) == (current, outcome(by_itself))
        assert outcome(answers[1]) == "running"
        if current != "unknown":
            assert stored(store, listed) == stored(store, single), current
    assert store.counts.drift() == {}


def make(store: TaskStore, current: str) -> str:
    """A task in one of test_every_report's states."""
    if current == "unknown":
        return "ts_aaa_" + "0" * 32
    if current == "published?":  # started; the dispatcher has not confirmed it yet
        return store.create(AAA, {}, start=True)["task_id"]
    if current in ("asked to stop", "retry"):
        task_id = task_in(store, AAA, Status.RUNNING)
        if current == "asked to stop":
            store.cancel(task_id, "stop")
        return task_id
    return task_in(store, AAA, Status(current))


def test_a_list_sent_again_changes_nothing_and_counts_once(store: TaskStore):
    ended, next_one = task_in(store, AAA, Status.RUNNING), task_in(store, AAA, Status.WAITING)
    store.report_each(pair(ended, next_one))
    before = stored(store, ended), stored(store, next_one)
    store._clock.advance(1)
    answers = store.report_each(pair(ended, next_one))
    assert [a["status"] for a in answers] == ["finished", "running"]
    assert (stored(store, ended), stored(store, next_one)) == before
    assert store.counts.drift() == {}


def test_one_list_sent_from_many_threads_at_once_is_applied_and_counted_once(store: TaskStore):
    """A worker's request sent again while the first is still being written: every copy is
    answered as taken, each task changes once, and the counts move once."""
    for _ in range(5):
        ended, next_one = task_in(store, AAA, Status.RUNNING), task_in(store, AAA, Status.WAITING)
        answers = sent_at_once(store, pair(ended, next_one), copies=8)
        assert answers == [["finished", "running"]] * 8
        assert [e["status"] for e in store.get(ended)["history"]].count("finished") == 1
        assert [e["status"] for e in store.get(next_one)["history"]].count("running") == 1
    assert store.counts.drift() == {}


def sent_at_once(store: TaskStore, reports: list[Report], copies: int) -> list[list[Any]]:
    """The outcomes of `copies` calls of report_each with the same list, from threads
    released together."""
    answers: list[list[Any]] = []

    def send() -> None:
        answers.append([outcome(a) for a in store.report_each(reports)])

    assert at_once([(send, 1)] * copies) == []
    return answers
