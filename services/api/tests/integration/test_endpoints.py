"""Every endpoint over the real store (FerretDB), through falcon's test client."""

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from falcon import testing

from taskmill.store import TaskStore, connect
from taskmill_api.app import create_app
from tests.helpers import Clock

pytestmark = pytest.mark.integration

TOKEN = "test-token"
UNKNOWN = "ts_aaa_" + "0" * 32


@pytest.fixture
def config(make_config):
    return make_config()


@pytest.fixture
def store(config):
    store = TaskStore.open(config)
    store.ensure_indexes()
    yield store
    store.close()


@pytest.fixture
def client(config, store):
    return testing.TestClient(create_app(config, store), headers={"Authorization": TOKEN})


def post(client, route, body=None, **kwargs):
    return client.simulate_post(route, json=body, **kwargs)


def create(client, service="aaa", condition=None, start=False):
    data = {"service": service, "condition": condition or {}}
    if start:
        data["start"] = True
    answer = post(client, "/api/create_task", {"data": data})
    assert answer.status_code == 200, answer.json
    return answer.json["task_id"]


def report(client, task_id, status, **extra):
    return post(client, "/api/update_status_task",
                {"data": {"task_id": task_id, "status": status, **extra}})


def test_the_originals_requests_get_the_originals_answers(client, store):
    """Requests written as in the original document get the answers it shows."""
    # 1.8: the services
    answer = client.simulate_post("/api/service_task")
    assert answer.json == {"result": "ok", "count": 2, "data": ["aaa", "bbb"]}
    # 1.1: create
    body = json.dumps({"data": {"service": "aaa", "condition": {"x": "x"}}})
    answer = client.simulate_post("/api/create_task", body=body,
                                  headers={"Content-Type": "application/json"})
    assert answer.json["result"] == "ok" and answer.json["task_id"].startswith("ts_aaa_")
    task_id = answer.json["task_id"]
    assert post(client, "/api/create_task",
                {"data": {"service": "search_user", "condition": {"x": "x"}}}).json == \
        {"result": "exception", "message": "service not support"}
    # 1.6 start, then a worker's 1.3 updates, then 1.4 result and 1.2 status
    assert post(client, "/api/start_task", {"task_id": task_id}).json == \
        {"result": "ok", "task_id": task_id}
    store.outbox.mark_published(store.outbox.due(10, "aaa"))
    assert report(client, task_id, "running", message="msg").json == \
        {"result": "ok", "status": {"task_id": task_id, "status": "running"}}
    report(client, task_id, "finished", result={"x": "x"})
    result = post(client, "/api/result_task", {"data": {"task_id": task_id}}).json
    assert result["result"] == "ok" and result["data"] == {"x": "x"}
    assert result["spend_time"] >= 0 and result["start_time"] and result["end_time"]
    [status] = post(client, "/api/status_task", {"data": [{"task_id": task_id}]}).json["status"]
    assert {k: status[k] for k in ("task_id", "status", "message")} == \
        {"task_id": task_id, "status": "finished", "message": None}
    # 1.5 list, 1.7 update condition
    listed = post(client, "/api/tasks", {"p_size": 10, "page": 1, "service": "aaa",
                                         "status": "finished"}).json
    assert listed["total"] == 1 and listed["data"][0]["condition"] == {"x": "x"}
    assert post(client, "/api/update_task", {"task_id": task_id, "condition": {"y": 1}}).json == \
        {"result": "ok", "task_id": task_id}


def test_status_task_answers_in_order_with_invalid_for_unknown(client):
    """Up to max_status_task ids, answered in the order asked; unknown ids are Invalid."""
    a, b = create(client), create(client, "bbb")
    answer = post(client, "/api/status_task",
                  {"data": [{"task_id": b}, {"task_id": "nope"}, {"task_id": a}]}).json
    assert [(s["task_id"], s["status"]) for s in answer["status"]] == \
        [(b, "ready"), ("nope", "Invalid"), (a, "ready")]


def test_create_and_start_in_one_call(client, store):
    """`start: true` records the start so the dispatcher picks the task up."""
    task_id = create(client, start=True)
    [due] = store.outbox.due(10, "aaa")
    assert due["task_id"] == task_id and due["attempt"] == 1


@pytest.mark.parametrize("route, body", [
    ("/api/result_task", {"data": {"task_id": UNKNOWN}}),
    ("/api/start_task", {"task_id": UNKNOWN}),
    ("/api/start_task", {"data": {"task_id": UNKNOWN}}),
    ("/api/update_task", {"task_id": UNKNOWN, "condition": {}}),
    ("/api/update_status_task", {"data": {"task_id": UNKNOWN, "status": "running"}}),
    ("/api/heartbeat_task", {"data": {"task_id": UNKNOWN}}),
])
def test_unknown_task_is_404(client, route, body):
    """Single-task endpoints answer 404 for a task that does not exist."""
    answer = post(client, route, body)
    assert answer.status_code == 404
    assert answer.json == {"result": "exception", "message": f"task {UNKNOWN} not found"}


def test_illegal_transitions_are_409_naming_both_states(client):
    """A worker cannot skip states or move a task backwards."""
    task_id = create(client)
    answer = report(client, task_id, "finished")
    assert answer.status_code == 409
    assert answer.json["message"] == f"task {task_id} cannot go from ready to finished"
    post(client, "/api/start_task", {"task_id": task_id})
    report(client, task_id, "running")  # published, not yet confirmed: allowed
    report(client, task_id, "failed", message="boom")
    answer = report(client, task_id, "running")
    assert answer.status_code == 409 and "from failed to running" in answer.json["message"]


def test_stale_attempt_is_409(client):
    """An update carrying an attempt that is not the current one is refused."""
    task_id = create(client, start=True)
    answer = report(client, task_id, "running", attempt=2)
    assert answer.status_code == 409 and "attempt 2" in answer.json["message"]
    assert report(client, task_id, "running", attempt=1).status_code == 200


def test_a_repeated_report_is_answered_as_the_first_and_changes_nothing(client):
    """A worker's request retried after its answer was lost: the same report of the same
    attempt is a 200 again, and the task's history holds it once."""
    task_id = create(client, start=True)
    for status, extra in (("running", {}), ("running", {}), ("finished", {"result": {"n": 1}}),
                          ("finished", {"result": {"n": 1}})):
        answer = report(client, task_id, status, attempt=1, **extra)
        assert answer.status_code == 200 and answer.json["status"]["status"] == status
    history = post(client, "/api/result_task", {"data": {"task_id": task_id}}).json["history"]
    assert [e["status"] for e in history] == ["ready", "running", "finished"]
    assert report(client, task_id, "running", attempt=1).status_code == 409  # backwards: still no


def test_a_list_of_reports_is_applied_in_order_each_answered_as_if_alone(client):
    """A worker's list of reports (its last task's end and the next one's running): each
    is applied, and one the api refuses is answered in its place with the status and
    message it would have had alone, without stopping the others."""
    ended, starting, fresh = create(client, start=True), create(client, start=True), create(client)
    assert report(client, ended, "running", attempt=1).status_code == 200
    answer = post(client, "/api/update_status_task", {"data": [
        {"task_id": ended, "status": "finished", "result": {"n": 1}, "attempt": 1},
        {"task_id": UNKNOWN, "status": "running"},
        {"task_id": fresh, "status": "finished"},
        {"task_id": starting, "status": "running", "attempt": 1, "worker": "w1"}]})
    assert answer.status_code == 200
    assert answer.json == {"result": "ok", "status": [
        {"task_id": ended, "status": "finished"},
        {"task_id": UNKNOWN, "error": 404, "message": f"task {UNKNOWN} not found"},
        {"task_id": fresh, "error": 409, "message": f"task {fresh} cannot go from ready to finished"},
        {"task_id": starting, "status": "running"}]}
    statuses = post(client, "/api/status_task", {"data": [
        {"task_id": t} for t in (ended, starting, fresh)]}).json["status"]
    assert [s["status"] for s in statuses] == ["finished", "running", "ready"]
    assert post(client, "/api/result_task", {"data": {"task_id": ended}}).json["data"] == {"n": 1}
    # Sent again (its answer lost): answered as the first time, nothing changes twice.
    again = post(client, "/api/update_status_task", {"data": [
        {"task_id": ended, "status": "finished", "result": {"n": 1}, "attempt": 1},
        {"task_id": starting, "status": "running", "attempt": 1, "worker": "w1"}]})
    assert [s["status"] for s in again.json["status"]] == ["finished", "running"]
    history = post(client, "/api/result_task", {"data": {"task_id": starting}}).json["history"]
    assert [e["status"] for e in history] == ["ready", "running"]


@pytest.mark.parametrize("reports, message", [
    ([{"status": "finished"}, {"status": "done"}],
     "data[1].status must be one of running, finished, failed"),
    ([{"status": "finished"}, {"status": "running", "result": {}}],
     "result is only accepted with status finished"),
    ([{"status": "finished"}] * 11, "data must list 1 to 10 items, not 11"),
    ([], "data must list 1 to 10 items, not 0"),
])
def test_a_list_with_a_bad_report_is_refused_whole_and_changes_nothing(client, reports, message):
    task_id = create(client, start=True)
    assert report(client, task_id, "running", attempt=1).status_code == 200
    answer = post(client, "/api/update_status_task",
                  {"data": [{"task_id": task_id, "attempt": 1, **r} for r in reports]})
    assert answer.status_code == 400
    assert message in answer.json["message"]
    [status] = post(client, "/api/status_task", {"data": [{"task_id": task_id}]}).json["status"]
    assert status["status"] == "running"


def test_start_rules(client):
    """Start from ready once, again from failed (attempt + 1), never while busy."""
    task_id = create(client)
    assert post(client, "/api/start_task", {"task_id": task_id}).status_code == 200
    second = post(client, "/api/start_task", {"data": {"task_id": task_id}})
    assert second.status_code == 409 and "already started" in second.json["message"]
    report(client, task_id, "running")
    assert post(client, "/api/start_task", {"task_id": task_id}).status_code == 409
    busy = post(client, "/api/update_task", {"task_id": task_id, "condition": {"a": 1}})
    assert busy.status_code == 409
    report(client, task_id, "failed", message="bad luck")
    assert post(client, "/api/start_task", {"task_id": task_id}).status_code == 200
    [status] = post(client, "/api/status_task", {"data": [{"task_id": task_id}]}).json["status"]
    assert (status["status"], status["attempt"]) == ("ready", 2)


def start_twice_at_once(client, task_id):
    codes = []
    barrier = threading.Barrier(2)

    def start():
        barrier.wait()
        codes.append(post(client, "/api/start_task", {"task_id": task_id}).status_code)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return codes


def test_concurrent_double_start_exactly_one_succeeds(client):
    """Two starts of one task at the same moment: one 200, one 409."""
    for _ in range(5):
        assert sorted(start_twice_at_once(client, create(client))) == [200, 409]


def test_result_of_an_unfinished_task_says_where_it_is(client):
    """data is null until the task finishes; status tells where it is."""
    task_id = create(client)
    answer = post(client, "/api/result_task", {"data": {"task_id": task_id}}).json
    assert (answer["status"], answer["data"], answer["spend_time"]) == ("ready", None, None)


@pytest.fixture
def paced(config, store):
    """A client of an api whose store (the `store` fixture's collection, indexes made) keeps
    the time the test sets, and that clock."""
    clock = Clock()
    timed = TaskStore(connect(config.mongo), config.lifecycle, config.retries, clock=clock)
    yield testing.TestClient(create_app(config, timed), headers={"Authorization": TOKEN}), clock
    timed.close()


def test_list_paging(paced):
    """total counts every match; pages hold p_size, newest first (created a millisecond
    apart: the store keeps milliseconds, and tasks created in one are listed in task_id
    order, which is random)."""
    client, clock = paced
    ids = []
    for i in range(5):
        clock.advance(0.001)
        ids.append(create(client, "bbb" if i % 2 else "aaa"))
    page = post(client, "/api/tasks", {"p_size": 2, "page": 2}).json
    assert (page["total"], page["count"]) == (5, 2)
    assert [t["task_id"] for t in page["data"]] == list(reversed(ids))[2:4]
    only_bbb = post(client, "/api/tasks", {"service": "bbb"}).json
    assert only_bbb["total"] == 2 and {t["service"] for t in only_bbb["data"]} == {"bbb"}
    assert post(client, "/api/tasks", {"page": 9}).json["data"] == []
    assert post(client, "/api/tasks").json["total"] == 5


def test_store_down_is_503_quickly(make_config):
    """With MongoDB unreachable the api answers 503 with the contract's body, in bounded time."""
    config = make_config(env={"MONGO_URI": "mongodb://127.0.0.1:1/"}, mongo_timeout_ms=300)
    store = TaskStore(connect(config.mongo))
    try:
        client = testing.TestClient(create_app(config, store), headers={"Authorization": TOKEN})
        answer = post(client, "/api/create_task", {"data": {"service": "aaa", "condition": {}}})
        assert answer.status_code == 503
        assert answer.json["result"] == "exception" and "MongoDB" in answer.json["message"]
        assert client.simulate_get("/readyz").status_code == 503
    finally:
        store.close()


def test_the_api_recovers_by_itself_when_mongodb_returns(make_config, private_server):
    """MongoDB stops under a running api: 503 in bounded time, then service resumes, data kept."""
    mongo = private_server("ferretdb")
    config = make_config(env={"MONGO_URI": mongo.address}, mongo_timeout_ms=1000)
    store = TaskStore(connect(config.mongo))
    client = testing.TestClient(create_app(config, store), headers={"Authorization": TOKEN})
    try:
        task_id = create(client)
        mongo.stop()
        began = time.monotonic()
        down = post(client, "/api/status_task", {"data": [{"task_id": task_id}]})
        assert down.status_code == 503, down.json
        assert down.json["result"] == "exception" and "MongoDB" in down.json["message"]
        assert time.monotonic() - began < 10, "a request hung while MongoDB was down"
        assert post(client, "/api/start_task", {"data": {"task_id": task_id}}).status_code == 503

        mongo.start()
        deadline = time.monotonic() + 30
        while client.simulate_get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the api did not recover after MongoDB came back"
            time.sleep(0.2)
        [status] = post(client, "/api/status_task", {"data": [{"task_id": task_id}]}).json["status"]
        assert status["status"] == "ready"
        assert post(client, "/api/start_task", {"data": {"task_id": task_id}}).status_code == 200
    finally:
        store.close()


def test_heartbeat_renews_a_running_tasks_lease(client):
    """A heartbeat stores progress and message; only a running task has a lease."""
    task_id = create(client, start=True)
    refused = post(client, "/api/heartbeat_task", {"data": {"task_id": task_id}})
    assert refused.status_code == 409
    report(client, task_id, "running", attempt=1)
    beat = post(client, "/api/heartbeat_task",
                {"data": {"task_id": task_id, "attempt": 1, "progress": 0.5, "message": "half"}})
    assert beat.status_code == 200 and beat.json["status"]["lease_until"]
    [status] = post(client, "/api/status_task", {"data": [{"task_id": task_id}]}).json["status"]
    assert (status["progress"], status["message"]) == (0.5, "half")
    bad = post(client, "/api/heartbeat_task", {"data": {"task_id": task_id, "progress": 2}})
    assert bad.status_code == 400


def test_cancel_task_answers_the_status_it_left_and_refuses_what_it_cannot(client, store):
    """cancel_task: a ready task ends failed, `cancelled` shows in status and result; an
    ended task is a 409, an unknown one a 404, a bad body a 400; none changes anything."""
    task_id = create(client)
    answer = post(client, "/api/cancel_task", {"task_id": task_id, "reason": "typo in condition"})
    assert answer.json == {"result": "ok", "task_id": task_id, "status": "failed"}
    [status] = post(client, "/api/status_task", {"data": [{"task_id": task_id}]}).json["status"]
    assert (status["status"], status["message"], status["cancelled"]) == \
        ("failed", "cancelled: typo in condition", True)
    assert post(client, "/api/result_task", {"data": {"task_id": task_id}}).json["cancelled"] is True
    before = store.get(task_id)
    for body, code, message in [
        ({"data": {"task_id": task_id}}, 409, "only a task that has not ended"),
        ({"task_id": UNKNOWN}, 404, UNKNOWN),
        ({"task_id": task_id, "reason": "x" * 501}, 400, "reason"),
        ({"task_id": task_id, "reason": 7}, 400, "reason"),
        ({"task_id": task_id, "why": "?"}, 400, "why"),
    ]:
        answer = post(client, "/api/cancel_task", body)
        assert answer.status_code == code and message in answer.json["message"], answer.json
    assert store.get(task_id) == before
    # Started again, it runs like any failed task, no longer marked cancelled.
    post(client, "/api/start_task", {"task_id": task_id})
    [status] = post(client, "/api/status_task", {"data": [{"task_id": task_id}]}).json["status"]
    assert (status["status"], status["cancelled"]) == ("ready", False)


def test_a_running_tasks_heartbeat_answers_cancel(client, store):
    task_id = create(client, start=True)
    store.outbox.mark_published(store.outbox.due(10, "aaa"))
    report(client, task_id, "running", attempt=1)
    beat = {"data": {"task_id": task_id, "attempt": 1}}
    assert post(client, "/api/heartbeat_task", beat).json["status"]["cancel"] is False
    assert post(client, "/api/cancel_task", {"task_id": task_id}).json["status"] == "running"
    assert post(client, "/api/heartbeat_task", beat).json["status"]["cancel"] is True
    answer = report(client, task_id, "failed", message="stopped", attempt=1)
    assert answer.json["status"]["status"] == "failed"
    assert store.get(task_id)["status_message"]["failed"] == "cancelled: by client"


def test_create_with_an_idempotency_key_answers_the_first_task(client, store):
    data = {"service": "aaa", "condition": {"q": 1}, "idempotency_key": "invoice 2026/12-01"}
    first = post(client, "/api/create_task", {"data": data}).json
    again = post(client, "/api/create_task", {"data": data}).json
    assert first == {"result": "ok", "task_id": first["task_id"], "created": True}
    assert again == {**first, "created": False}
    assert store.counts.total("aaa") == 1
    answer = post(client, "/api/create_task", {"data": {**data, "condition": {"q": 2}}})
    assert answer.status_code == 409 and "another request" in answer.json["message"]
    for key in ("", "x" * 129, "tab\there", "é"):
        answer = post(client, "/api/create_task", {"data": {**data, "idempotency_key": key}})
        assert answer.status_code == 400 and "idempotency_key" in answer.json["message"], key
    assert store.counts.total("aaa") == 1


def test_create_takes_a_priority_from_0_to_9(client, store):
    urgent = post(client, "/api/create_task",
                  {"data": {"service": "aaa", "condition": {}, "priority": 9}}).json["task_id"]
    assert store.get(urgent)["priority"] == 9
    assert store.get(create(client))["priority"] == 5
    for priority in (10, -1, "9", 9.5, True, None):
        answer = post(client, "/api/create_task",
                      {"data": {"service": "aaa", "condition": {}, "priority": priority}})
        assert answer.status_code == 400 and "priority" in answer.json["message"], priority
    assert store.counts.total("aaa") == 2


def test_service_stats_counts_by_status_and_what_ended_in_the_last_hour(config):
    """Every service's kept counts, the tasks that ended within the hour (not before),
    the run times of the last finished and, before any dispatcher looked, its defaults."""
    now = [datetime(2026, 12, 1, 10, 0, tzinfo=UTC)]
    store = TaskStore(connect(config.mongo), config.lifecycle, clock=lambda: now[0])
    store.ensure_indexes()
    client = testing.TestClient(create_app(config, store), headers={"Authorization": TOKEN})
    try:
        check_service_stats(client, store, now)
    finally:
        store.close()


def check_service_stats(client, store, now):

    def run(outcome, seconds):
        task_id = create(client, start=True)
        store.outbox.mark_published(store.outbox.due(10, "aaa"))
        report(client, task_id, "running")
        now[0] += timedelta(seconds=seconds)
        report(client, task_id, outcome, **({"message": "no"} if outcome == "failed" else {}))

    run("finished", 10)
    now[0] += timedelta(hours=2)  # that one ended long ago
    run("finished", 20)
    run("finished", 30)
    run("failed", 5)
    create(client)
    create(client, "bbb", start=True)
    answer = post(client, "/api/service_stats")
    assert answer.status_code == 200
    aaa, bbb = answer.json["data"]
    assert (answer.json["count"], aaa["service"], bbb["service"]) == (2, "aaa", "bbb")
    assert aaa["counts"] == {"ready": 1, "waiting": 0, "running": 0, "finished": 3, "failed": 1}
    assert aaa["last_hour"] == {"finished": 2, "failed": 1, "per_minute": 0.05,
                                "failure_rate": pytest.approx(1 / 3)}
    assert aaa["run_time"] == {"median_s": 20.0, "p95_s": 30.0}
    assert bbb["counts"] == {"ready": 1, "waiting": 0, "running": 0, "finished": 0, "failed": 0}
    assert bbb["last_hour"] == {"finished": 0, "failed": 0, "per_minute": 0.0, "failure_rate": None}
    assert (bbb["run_time"], bbb["workers"], bbb["dispatcher_seen_at"]) == (None, None, None)
    assert bbb["breaker"] == {"state": "closed", "until": None, "failures": 0}


def test_result_task_names_the_service_condition_creation_and_priority(client):
    """What the dashboard shows of a task comes from one call."""
    task_id = post(client, "/api/create_task", {"data": {
        "service": "bbb", "condition": {"q": [1, {"r": None}]}, "priority": 8}}).json["task_id"]
    answer = post(client, "/api/result_task", {"data": {"task_id": task_id}}).json
    assert {k: answer[k] for k in ("service", "condition", "priority")} == \
        {"service": "bbb", "condition": {"q": [1, {"r": None}]}, "priority": 8}
    assert answer["create_time"].endswith("Z")
