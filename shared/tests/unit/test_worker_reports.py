"""The worker's reports in a backlog: a task's outcome goes with the next task's `running`
in one request, each answer is acted on as if sent alone, and an api that refuses the
pair as a whole is sent each report alone. The feed and the api are fakes (pure logic);
the same on the real stack: tests/e2e/test_tasks_run.py."""

from __future__ import annotations

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


class Feed:
    """Messages already fetched (a backlog); records what the worker did with each."""

    def __init__(self, *task_ids: str) -> None:
        self.queue = [Message(t) for t in task_ids]
        self.events: list[tuple[str, str]] = []

    def next(self, timeout_s: float) -> Message | None:
        return self.queue.pop(0) if self.queue else None

    def taken(self, msg: Message) -> None:
        self.events.append(("taken", msg.task_id))

    def done(self, msg: Message) -> None:
        self.events.append(("done", msg.task_id))

    def give_back(self, msg: Message) -> None:
        self.events.append(("give_back", msg.task_id))

    def reject(self, msg: Message) -> None:
        self.events.append(("reject", msg.task_id))

    def deliveries(self, msg: Message) -> int:
        return 1

    def hold(self) -> None: ...

    def release(self) -> None: ...

    def keep_alive(self, timeout_s: float) -> None: ...

    def refresh_lag(self) -> None: ...


class Api:
    """Takes every report but those in `refused`; `lists=False`: an api older than lists."""

    def __init__(self, lists: bool = True, refused: dict[tuple[str, str], int] | None = None) -> None:
        self.lists = lists
        self.refused = refused or {}
        self.requests: list[list[tuple[str, str]]] = []
        self.pairs_tried = 0

    def _answer(self, task_id: str, status: str) -> dict[str, Any] | ApiError:
        code = self.refused.get((name(task_id), status))
        return {"task_id": task_id, "status": status} if code is None else ApiError(code, "refused")

    def update_status(self, task_id: str, status: str, message: Any = None, result: Any = None,
                      attempt: int | None = None, retry: bool = False,
                      worker: str | None = None) -> dict[str, Any]:
        self.requests.append([(name(task_id), status)])
        answer = self._answer(task_id, status)
        if isinstance(answer, ApiError):
            raise answer
        return answer

    def update_statuses(self, reports: list[Report]) -> list[dict[str, Any] | ApiError]:
        self.pairs_tried += 1
        if not self.lists:
            raise ApiError(400, "Invalid parameter: data must be a JSON object")
        self.requests.append([(name(r.task_id), r.status) for r in reports])
        return [self._answer(r.task_id, r.status) for r in reports]


@pytest.fixture
def work():
    """Let a worker handle the feed's first message (and those that follow it in pairs):
    the tasks whose algorithm it ran, in order."""
    config = load_config(ROOT / "config" / "config.yaml", {"AUTH_TOKEN": "t"})

    def handle(feed: Feed, api: Api) -> list[str]:
        ran: list[str] = []

        def algorithm(condition: dict[str, Any], ctx: Any) -> dict[str, Any]:
            ran.append(condition["n"])
            return {}
        worker = Worker(config, config.service("aaa"), algorithm, api, feed,  # type: ignore[arg-type]
                        Sources(config.sources), Liveness(60))
        worker.handle(feed.next(0))
        return ran
    return handle


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
