"""The client's own logic, over httpx's in-memory transport: which calls are tried again
and after how long, the exception each answer becomes, wait's rounds and its timeout.
(Every method against the real api: client/tests/e2e.)"""

import json

import httpx
import pytest

from taskmill_client import (
    ApiUnreachable,
    Conflict,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    Taskmill,
    TaskNotFound,
    WaitTimeout,
)


class Api:
    """Answers each request with the next of `answers` (status, body, headers)."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests: list[tuple[str, dict]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.url.path, json.loads(request.content)))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, body, *headers = answer
        return httpx.Response(status, json=body, headers=(headers or [{}])[0])


def client(api, sleeps=None):
    return Taskmill("http://api", "t", transport=httpx.MockTransport(api),
                    sleep=(sleeps if sleeps is not None else []).append)


OK_SERVICES = (200, {"result": "ok", "count": 1, "data": ["aaa"]})


def test_reads_are_tried_again_after_outages_and_rate_limits():
    sleeps: list[float] = []
    api = Api(httpx.ConnectError("refused"), (503, {"result": "exception", "message": "down"}),
              (429, {"result": "exception", "message": "slow down"}, {"Retry-After": "3"}), OK_SERVICES)
    assert client(api, sleeps).services() == ["aaa"]
    assert sleeps == [0.2, 0.5, 3.0]


def test_a_create_without_a_key_is_never_repeated_one_with_a_key_is():
    api = Api((503, {"result": "exception", "message": "down"}))
    with pytest.raises(ServiceUnavailable):
        client(api).create("aaa", {})
    assert len(api.requests) == 1
    api = Api((503, {"result": "exception", "message": "down"}),
              (200, {"result": "ok", "task_id": "ts_aaa_1", "created": False}))
    created = client(api).create("aaa", {"x": 1}, start=True, idempotency_key="k")
    assert (created.task_id, created.created) == ("ts_aaa_1", False)
    assert api.requests[1] == ("/api/create_task", {"data": {"service": "aaa", "condition": {"x": 1},
                                                             "start": True, "idempotency_key": "k"}})


def test_answers_become_their_exceptions_with_the_apis_message():
    cases = [(404, TaskNotFound), (409, Conflict), (500, ServerError)]
    for status, kind in cases:
        with pytest.raises(kind) as raised:
            client(Api((status, {"result": "exception", "message": "why"}))).start("ts_aaa_1")
        assert (raised.value.status, raised.value.message) == (status, "why")
    with pytest.raises(RateLimited) as limited:
        client(Api((429, {"result": "exception", "message": "m"}, {"Retry-After": "7"}))).start("x")
    assert limited.value.retry_after == 7
    with pytest.raises(ServerError, match="not a JSON object"):
        client(Api((200, ["not", "an", "object"]))).services()
    with pytest.raises(ApiUnreachable, match="did not answer"):
        client(Api(*[httpx.ReadTimeout("slow")] * 5)).services()


def item(task_id, status, progress=None):
    return {"task_id": task_id, "status": status, "message": None, "start_time": None,
            "end_time": None, "attempt": 1, "progress": progress, "cancelled": False,
            "pending_reason": None, "queue_position": None}


def test_wait_polls_what_has_not_ended_and_reports_every_round():
    api = Api((200, {"result": "ok", "status": [item("a", "running", 0.5), item("b", "finished")]}),
              (200, {"result": "ok", "status": [item("a", "finished", 1.0)]}))
    rounds: list[list[str]] = []
    done = client(api).wait(["a", "b"], poll_s=0.01,
                            on_progress=lambda ss: rounds.append([s.status for s in ss]))
    assert {t: s.status for t, s in done.items()} == {"a": "finished", "b": "finished"}
    assert rounds == [["running", "finished"], ["finished", "finished"]]
    assert [body["data"] for _, body in api.requests] == [[{"task_id": "a"}, {"task_id": "b"}],
                                                          [{"task_id": "a"}]]


def test_wait_gives_up_after_its_timeout_with_the_last_statuses():
    api = Api(*[(200, {"result": "ok", "status": [item("a", "waiting")]})] * 3)
    with pytest.raises(WaitTimeout) as timed_out:
        client(api).wait(["a"], timeout_s=0.0, poll_s=1.0)
    assert timed_out.value.statuses[0].status == "waiting"


def test_status_asks_ten_ids_at_a_time():
    ids = [f"t{n}" for n in range(23)]
    api = Api(*[(200, {"result": "ok", "status": [item(t, "ready") for t in ids[n:n + 10]]})
                for n in (0, 10, 20)])
    assert [s.task_id for s in client(api).status(ids)] == ids
    assert [len(body["data"]) for _, body in api.requests] == [10, 10, 3]
