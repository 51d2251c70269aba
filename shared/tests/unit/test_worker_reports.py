"""The worker's reports in a backlog: a task's outcome goes with the next task's `running`
in one request; a worker of quick tasks claims its backlog in batches (a batch's outcomes
with the next batch's running reports); each answer is acted on as if sent alone, and an
api that refuses a list as a whole is sent each report alone. A long run in a batch has
the outcomes held so far reported at once and the waiting tasks' leases renewed. The feed
and the api are fakes (pure logic); the same on the real stack:
tests/e2e/test_tasks_run.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from taskmill.client import Report
from taskmill.codec import TaskMessage
from taskmill.config import load_config
from taskmill.errors import ApiError
from taskmill.health import Liveness
from taskmill.worker.runner import Worker
from taskmill.worker.sources import Sources
from tests.helpers import ROOT


def name(task_id: str) -> str:
    return task_id[-1]


class Message:
    """A task's message; its task named by one hex digit (`a`: ts_aaa_aaa…a)."""

    def __init__(self, letter: str) -> None:
        task = TaskMessage("ts_aaa_" + letter * 32, "aaa", "mongo", {"n": letter}, attempt=1)
        self.task_id = letter
        self._value, self._headers = task.encode(), task.headers()

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers


class NotATask(Message):
    """A message that is not a task (named `letter` all the same)."""

    def __init__(self, letter: str) -> None:
        super().__init__(letter)
        self._value = b"not json"


class Feed:
    """Messages already fetched (a backlog); records what the worker did with each.
    `one_at_a_time`: like a share group, polled again only once the message in hand was
    taken or let go of."""

    def __init__(self, *messages: str | Message, one_at_a_time: bool = False) -> None:
        self.queue = [m if isinstance(m, Message) else Message(m) for m in messages]
        self.events: list[tuple[str, str]] = []
        self.one_at_a_time = one_at_a_time
        self.in_hand: Message | None = None

    def next(self, timeout_s: float) -> Message | None:
        assert not (self.one_at_a_time and self.in_hand), f"polled with {self.in_hand.task_id} in hand"
        self.in_hand = self.queue.pop(0) if self.queue else None
        return self.in_hand

    def _event(self, kind: str, msg: Message) -> None:
        self.events.append((kind, msg.task_id))
        if msg is self.in_hand:
            self.in_hand = None

    def taken(self, msg: Message) -> None:
        self._event("taken", msg)

    def done(self, msg: Message) -> None:
        self._event("done", msg)

    def give_back(self, msg: Message) -> None:
        self._event("give_back", msg)

    def reject(self, msg: Message) -> None:
        self._event("reject", msg)

    def deliveries(self, msg: Message) -> int:
        return 1

    def hold(self) -> None: ...

    def release(self) -> None: ...

    def keep_alive(self, timeout_s: float) -> None: ...

    def refresh_lag(self) -> None: ...


class Api:
    """Takes every report but those in `refused`; `lists=False`: an api older than lists.
    A heartbeat answers `cancel` for the tasks in `cancelled`, 409 for those in `lost`."""

    def __init__(self, lists: bool = True, refused: dict[tuple[str, str], int] | None = None,
                 cancelled: set[str] | None = None, lost: set[str] | None = None) -> None:
        self.lists = lists
        self.refused = refused or {}
        self.cancelled = cancelled or set()
        self.lost = lost or set()
        self.requests: list[list[tuple[str, str]]] = []
        self.heartbeats: list[str] = []
        self.pairs_tried = 0
        self.changed = threading.Condition()

    def wait_for(self, what: str, check: Callable[[], bool], timeout_s: float = 10.0) -> None:
        """Wait (in the algorithm's thread) until the worker has sent what `check` looks for."""
        with self.changed:
            assert self.changed.wait_for(check, timeout_s), f"the worker never sent {what}"

    def heartbeat(self, task_id: str, attempt: int | None = None, progress: float | None = None,
                  message: Any = None) -> dict[str, Any]:
        with self.changed:
            self.heartbeats.append(name(task_id))
            self.changed.notify_all()
        if name(task_id) in self.lost:
            raise ApiError(409, "the task is not running")
        return {"result": "ok", "status": {"task_id": task_id, "status": "running",
                                           "cancel": name(task_id) in self.cancelled}}

    def _record(self, reports: list[tuple[str, str]]) -> None:
        with self.changed:
            self.requests.append(reports)
            self.changed.notify_all()

    def _answer(self, task_id: str, status: str) -> dict[str, Any] | ApiError:
        code = self.refused.get((name(task_id), status))
        return {"task_id": task_id, "status": status} if code is None else ApiError(code, "refused")

    def update_status(self, task_id: str, status: str, message: Any = None, result: Any = None,
                      attempt: int | None = None, retry: bool = False,
                      worker: str | None = None) -> dict[str, Any]:
        self._record([(name(task_id), status)])
        answer = self._answer(task_id, status)
        if isinstance(answer, ApiError):
            raise answer
        return answer

    def update_statuses(self, reports: list[Report]) -> list[dict[str, Any] | ApiError]:
        self.pairs_tried += 1
        if not self.lists:
            raise ApiError(400, "Invalid parameter: data must be a JSON object")
        if any(self.refused.get((name(r.task_id), r.status)) == 400 for r in reports):
            raise ApiError(400, "Invalid parameter: data[1].result is larger than allowed")
        self._record([(name(r.task_id), r.status) for r in reports])
        return [self._answer(r.task_id, r.status) for r in reports]


Algorithm = Callable[[str, Worker], None]  # what a task does besides being recorded


@pytest.fixture
def work():
    """Let a worker that claims up to `batch` tasks at once handle the feed's first message
    (and those it claims behind it): the tasks whose algorithm it ran, in order. `algorithm`
    is called with each task's name and the worker."""
    config = load_config(ROOT / "config" / "config.yaml", {"AUTH_TOKEN": "t"})

    def handle(feed: Feed, api: Api, batch: int = 1, algorithm: Algorithm | None = None) -> list[str]:
        ran: list[str] = []
        batched = replace(config, lifecycle=replace(config.lifecycle, worker_batch=batch))

        def run(condition: dict[str, Any], ctx: Any) -> dict[str, Any]:
            ran.append(condition["n"])
            if algorithm is not None:
                algorithm(condition["n"], worker)
            return {}
        worker = Worker(batched, config.service("aaa"), run, api, feed,  # type: ignore[arg-type]
                        Sources(config.sources), Liveness(60))
        worker.handle(feed.next(0))
        return ran
    return handle


def lets_go_in_order(feed: Feed, *task_ids: str) -> None:
    """Every message was let go of (`done`), in the order it came."""
    assert [t for event, t in feed.events if event == "done"] == list(task_ids)


def test_in_a_backlog_each_outcome_goes_with_the_next_running(work):
    feed, api = Feed("a", "b", "c"), Api()
    ran = work(feed, api)
    assert api.requests == [[("a", "running")], [("a", "finished"), ("b", "running")],
                            [("b", "finished"), ("c", "running")], [("c", "finished")]]
    assert ran == ["a", "b", "c"]
    assert feed.events == [("taken", "a"), ("done", "a"), ("taken", "b"), ("done", "b"),
                           ("taken", "c"), ("done", "c")]


def test_a_next_task_refused_in_the_pair_is_skipped_and_the_outcome_kept(work):
    """The next task's running is a 409 (another worker runs it): it is not run, its
    message is let go of; the outcome sent with it was taken."""
    feed, api = Feed("a", "b"), Api(refused={("b", "running"): 409})
    ran = work(feed, api)
    assert api.requests == [[("a", "running")], [("a", "finished"), ("b", "running")]]
    assert ran == ["a"]
    assert feed.events == [("taken", "a"), ("done", "a"), ("done", "b")]


def test_an_outcome_refused_as_bad_in_the_pair_is_reported_again_as_a_failure(work):
    """A refusal other than a conflict (here 404) in a pair: as when sent alone, the task is
    reported failed saying why, then the next task runs."""
    feed, api = Feed("a", "b"), Api(refused={("a", "finished"): 404})
    ran = work(feed, api)
    assert api.requests[:3] == [[("a", "running")], [("a", "finished"), ("b", "running")],
                                [("a", "failed")]]
    assert ran == ["a", "b"]
    assert ("done", "b") in feed.events


def test_an_api_without_lists_is_sent_each_report_alone_and_not_asked_again(work):
    feed, api = Feed("a", "b", "c"), Api(lists=False)
    ran = work(feed, api)
    assert api.requests == [[("a", "running")], [("a", "finished")], [("b", "running")],
                            [("b", "finished")], [("c", "running")], [("c", "finished")]]
    assert api.pairs_tried == 1
    assert ran == ["a", "b", "c"]
    assert feed.events.count(("give_back", "b")) == 0


# -- batches (a worker of quick tasks) ---------------------------------------------------

def test_a_worker_of_quick_tasks_claims_its_backlog_in_batches(work):
    """The first task alone; after its quick run, the next three are claimed with its
    outcome, and their outcomes go with the running reports of the three after them:
    four requests for seven tasks, each run once, each message let go of in order."""
    feed, api = Feed("a", "b", "c", "d", "e", "f", "1"), Api()
    ran = work(feed, api, batch=3)
    assert api.requests == [
        [("a", "running")],
        [("a", "finished"), ("b", "running"), ("c", "running"), ("d", "running")],
        [("b", "finished"), ("c", "finished"), ("d", "finished"),
         ("e", "running"), ("f", "running"), ("1", "running")],
        [("e", "finished"), ("f", "finished"), ("1", "finished")]]
    assert ran == ["a", "b", "c", "d", "e", "f", "1"]
    lets_go_in_order(feed, "a", "b", "c", "d", "e", "f", "1")


def test_a_task_refused_in_a_batch_is_skipped_and_the_others_run(work):
    """c's running is a 409 (another worker runs it): not run, and its message is let go
    of in its turn, after b's outcome was reported."""
    feed, api = Feed("a", "b", "c", "d"), Api(refused={("c", "running"): 409})
    ran = work(feed, api, batch=3)
    assert ran == ["a", "b", "d"]
    assert api.requests[-1] == [("b", "finished"), ("d", "finished")]
    lets_go_in_order(feed, "a", "b", "c", "d")


def test_slow_tasks_are_claimed_one_at_a_time(work):
    """A run longer than QUICK_BATCH_S (0.1 s): the next task is claimed alone, with its
    outcome (a batch would hold tasks that other workers could run meanwhile)."""
    feed, api = Feed("a", "b", "c"), Api()
    ran = work(feed, api, batch=3, algorithm=lambda task, worker: time.sleep(0.15))
    assert api.requests == [[("a", "running")], [("a", "finished"), ("b", "running")],
                            [("b", "finished"), ("c", "running")], [("c", "finished")]]
    assert ran == ["a", "b", "c"]


def long_run_of(task: str, api: Api, until: Callable[[], bool], what: str) -> Algorithm:
    """An algorithm for which `task` runs past QUICK_TASK_S, until the worker has sent `what`."""
    def run(name: str, worker: Worker) -> None:
        if name == task:
            api.wait_for(what, until)
    return run


def test_a_long_run_in_a_batch_has_the_outcomes_before_it_reported_and_the_leases_after_it_renewed(work):
    """b, c, d claimed together; c runs long: b's outcome is reported while c runs (b does
    not look running the while) and d's lease is renewed with c's; then c and d end."""
    feed, api = Feed("a", "b", "c", "d"), Api()
    ran = work(feed, api, batch=3, algorithm=long_run_of(
        "c", api, lambda: [("b", "finished")] in api.requests and "d" in api.heartbeats,
        "b's outcome and d's heartbeat"))
    assert ran == ["a", "b", "c", "d"]
    assert api.requests[2:] == [[("b", "finished")], [("c", "finished"), ("d", "finished")]]
    assert set(api.heartbeats) == {"c", "d"}
    lets_go_in_order(feed, "a", "b", "c", "d")


def test_a_task_cancelled_while_it_waits_in_a_batch_ends_failed_without_running(work):
    feed, api = Feed("a", "b", "c", "d"), Api(cancelled={"d"})
    ran = work(feed, api, batch=3, algorithm=long_run_of(
        "c", api, lambda: "d" in api.heartbeats, "d's heartbeat"))
    assert ran == ["a", "b", "c"]
    assert api.requests[-1] == [("c", "finished"), ("d", "failed")]
    lets_go_in_order(feed, "a", "b", "c", "d")


def test_a_task_whose_lease_was_lost_while_it_waited_is_not_run(work):
    """d's heartbeat is a 409 (its lease ran out, another attempt runs it): not run, not
    reported, its message let go of."""
    feed, api = Feed("a", "b", "c", "d"), Api(lost={"d"})
    ran = work(feed, api, batch=3, algorithm=long_run_of(
        "c", api, lambda: "d" in api.heartbeats, "d's heartbeat"))
    assert ran == ["a", "b", "c"]
    assert api.requests[-1] == [("c", "finished")]
    lets_go_in_order(feed, "a", "b", "c", "d")


def test_a_worker_told_to_stop_runs_the_batch_it_claimed_and_claims_no_more(work):
    feed, api = Feed("a", "b", "c", "d", "e", "f"), Api()

    def stop_at_b(task: str, worker: Worker) -> None:
        if task == "b":
            worker.stopping.set()
    ran = work(feed, api, batch=3, algorithm=stop_at_b)
    assert ran == ["a", "b", "c", "d"]
    assert api.requests[-1] == [("b", "finished"), ("c", "finished"), ("d", "finished")]
    assert [m.task_id for m in feed.queue] == ["e", "f"]
    lets_go_in_order(feed, "a", "b", "c", "d")


def test_an_api_that_refuses_lists_is_sent_a_batch_one_report_at_a_time(work):
    feed, api = Feed("a", "b", "c"), Api(lists=False)
    ran = work(feed, api, batch=3)
    assert api.requests == [[("a", "running")], [("a", "finished")], [("b", "running")],
                            [("c", "running")], [("b", "finished")], [("c", "finished")]]
    assert api.pairs_tried == 1
    assert ran == ["a", "b", "c"]
    lets_go_in_order(feed, "a", "b", "c")


def test_a_feed_of_one_record_at_a_time_is_polled_only_once_the_one_in_hand_is_let_go_of(work):
    """As a share group requires: after a run the next message is polled with the one run
    taken already; after a message refused, or not a task, none is polled (the worker's
    loop polls the next one once it has been let go of)."""
    feed, api = Feed("a", "b", "c", one_at_a_time=True), Api(refused={("b", "running"): 409})
    assert work(feed, api) == ["a"]
    assert [m.task_id for m in feed.queue] == ["c"]
    feed = Feed(NotATask("x"), "c", one_at_a_time=True)
    assert work(feed, Api()) == []
    assert feed.events == [("reject", "x")] and [m.task_id for m in feed.queue] == ["c"]


def test_a_list_refused_for_one_bad_outcome_does_not_stop_the_lists(work):
    """c's result cannot be stored (400): the api refuses its whole list; each report then
    goes alone, c's outcome is refused with a 400 as well and reported failed saying why,
    and since that explains the list's 400, the next batch is claimed in one list again
    (an api without lists answers every list 400 and each report alone 200: paused)."""
    feed, api = Feed("a", "b", "c", "d", "e", "f", "1"), Api(refused={("c", "finished"): 400})
    ran = work(feed, api, batch=3)
    assert ran == ["a", "b", "c", "d", "e", "f", "1"]
    assert api.requests == [
        [("a", "running")],
        [("a", "finished"), ("b", "running"), ("c", "running"), ("d", "running")],
        [("b", "finished")], [("c", "finished")], [("c", "failed")], [("d", "finished")],
        [("e", "running"), ("f", "running"), ("1", "running")],
        [("e", "finished"), ("f", "finished"), ("1", "finished")]]
    lets_go_in_order(feed, "a", "b", "c", "d", "e", "f", "1")
