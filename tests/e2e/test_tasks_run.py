"""Tasks really run: create → start → Kafka → worker → finished, on the real stack."""

from __future__ import annotations

import signal
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import datetime

import pytest
from confluent_kafka import Consumer, Producer

from taskmill.codec import TaskMessage
from taskmill.store import TaskStore, connect
from tests.helpers import sample_data
from tests.servers import free_port
from tests.system import create_started, topic_messages, wait_until

pytestmark = pytest.mark.e2e


def runs(result: dict) -> Counter:
    return Counter(event["status"] for event in result["history"])


def test_a_task_of_each_service_finishes_with_the_right_result(start_system):
    """aaa searches the users, bbb aggregates the orders; times are in order."""
    system = start_system()
    aaa = system.api.create_task("aaa", {"city": "Berlin", "limit": 3})
    bbb = system.api.create_task("bbb", {"group_by": "status", "country": "DE"})
    for task_id in (aaa, bbb):
        system.api.start_task(task_id)
    system.wait_final([aaa, bbb])

    data = sample_data()
    berlin = [u for u in data.users() if u["city"] == "Berlin"]
    result = system.api.result_task(aaa)
    assert result["status"] == "finished", result
    assert result["data"] == {"total": len(berlin), "users": berlin[:3]}
    start, end = (datetime.fromisoformat(result[k].replace("Z", "+00:00"))
                  for k in ("start_time", "end_time"))
    assert start <= end and result["spend_time"] == pytest.approx((end - start).total_seconds(),
                                                                  abs=0.002)
    assert [e["status"] for e in result["history"]][-2:] == ["running", "finished"]

    german = {c["id"] for c in data.customers() if c["country"] == "DE"}
    expected = Counter()
    for order in data.orders():
        if order["customer_id"] in german:
            expected[order["status"]] += 1
    result = system.api.result_task(bbb)
    assert result["status"] == "finished", result
    assert {row["key"]: row["orders"] for row in result["data"]["rows"]} == dict(expected)


@pytest.mark.parametrize("service, condition, message", [
    ("aaa", {"limit": 0}, "limit must be a positive integer"),
    ("aaa", {"city": ["Berlin", "Lima"]}, "must be a string, number, boolean or null"),
    ("bbb", {"group_by": "day"}, "group_by must be one of country, status, month"),
    ("bbb", {"since": "2026-13-01"}, "since must be a date YYYY-MM-DD"),
])
def test_a_bad_condition_ends_failed_with_its_message(start_system, service, condition, message):
    """A condition the algorithm cannot accept ends the task failed, saying why."""
    system = start_system(workers=(service,))
    task_id = system.api.create_task(service, condition, start=True)
    [status] = system.wait_final([task_id])
    assert status["status"] == "failed"
    assert message in status["message"]


def test_200_tasks_started_at_once_all_end_none_twice(start_system):
    """A burst of 200 starts: every task ends, each ran exactly once."""
    system = start_system(workers=("aaa",))
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda i: system.api.create_task("aaa", {"limit": 1}, start=True),
                            range(200)))
    statuses = system.wait_final(ids, timeout_s=240)
    assert Counter(s["status"] for s in statuses) == {"finished": 200}
    for task_id in ids[::10]:
        assert runs(system.api.result_task(task_id))["running"] == 1


def test_a_worker_with_a_backlog_of_quick_tasks_claims_them_in_batches(start_system):
    """Quick tasks queued on Kafka behind a long one: the worker claims them in batches of
    up to `worker_batch` (5), one request saying a batch's outcomes and the next batch's
    running, so the api takes about one report request for five tasks (two a task when
    each goes alone, one in pairs), and every task still runs once and ends finished with
    its own result."""
    # Room on Kafka for the 40 at once: the relay publishes them whatever its rounds.
    system = start_system(workers=("slow",), lifecycle={"min_waiting_per_worker": 100})
    long = system.api.create_task("slow", {"sleep_s": 10}, start=True)
    system.wait_until("the long task runs",
                      lambda: system.statuses([long])[0]["status"] == "running")
    ids = create_started(system, 40)
    system.wait_until("the 40 tasks wait on Kafka behind it",
                      lambda: all(s["status"] == "waiting" for s in system.statuses(ids)))
    statuses = system.wait_final([long, *ids], timeout_s=120)
    assert Counter(s["status"] for s in statuses) == {"finished": 41}
    for task_id in ids:
        result = system.api.result_task(task_id)
        assert runs(result)["running"] == 1 and result["data"]["attempt"] == 1
    requests = system.metric("taskmill_api_requests_total", route="/api/update_status_task")["api"]
    assert requests <= 16, (f"{requests:.0f} report requests for 41 tasks (82 when sent one by "
                            "one, about 41 in pairs, 9 to 11 in batches of 5)")


def test_a_message_published_twice_runs_once(start_system, kafka_servers):
    """A duplicate of an already-run task's message is recognised and skipped."""
    system = start_system(workers=("aaa",))
    task_id = system.api.create_task("aaa", {"limit": 1}, start=True)
    system.wait_final([task_id])
    producer = Producer({"bootstrap.servers": kafka_servers})
    duplicate = TaskMessage(task_id, "aaa", "mongo", {"limit": 1}, attempt=1)
    producer.produce(system.services["aaa"]["topic_name"], value=duplicate.encode(),
                     key=duplicate.key(), headers=duplicate.headers())
    producer.flush(10)
    marker = system.api.create_task("aaa", {"limit": 1}, start=True)  # behind the duplicate
    system.wait_final([marker])
    result = system.api.result_task(task_id)
    assert runs(result) == {"ready": 1, "waiting": 1, "running": 1, "finished": 1} or \
        runs(result) == {"ready": 1, "running": 1, "finished": 1}


def test_a_worker_sent_sigterm_mid_stream_loses_nothing(start_system):
    """SIGTERM makes a worker finish its task and leave; a new one takes the rest."""
    system = start_system(workers=("aaa",))
    ids = [system.api.create_task("aaa", {"limit": 1}, start=True) for _ in range(60)]
    system.wait_final(ids[:5], timeout_s=60)
    assert system.stop("worker-aaa", signal.SIGTERM) == 0
    system.start_worker("aaa", name="worker-aaa-2")
    statuses = system.wait_final(ids, timeout_s=120)
    assert Counter(s["status"] for s in statuses) == {"finished": 60}
    for task_id in ids:
        assert runs(system.api.result_task(task_id))["running"] == 1


def test_an_api_sent_sigterm_writes_the_counts_of_the_reports_it_gathered(start_system):
    """Changes move the task counts in batches (here an hour apart): stopping the api (and
    the dispatcher) writes their batches, so `total` counts every run that ended."""
    system = start_system(workers=("aaa",), lifecycle={"counts_flush_s": 3600})
    ids = [system.api.create_task("aaa", {"limit": 1}, start=True) for _ in range(4)]
    system.wait_final(ids)
    with closing(TaskStore(connect(system.config.mongo))) as store:
        assert system.stop("dispatcher") == 0  # its publications' moves: written
        assert store.counts.total("aaa", "finished") == 0  # gathered in the api, not yet written
        assert system.stop("api") == 0
        assert {s: store.counts.total("aaa", s) for s in ("ready", "waiting", "running", "finished")} \
            == {"ready": 0, "waiting": 0, "running": 0, "finished": 4}


def test_a_worker_whose_partition_moves_away_mid_task_and_back_takes_tasks_again(start_system):
    """The worker's one partition goes to another group member during a long task and
    returns after it: librdkafka keeps a partition's pause across the move, so unless the
    worker resumes it on assignment, it never takes another task."""
    system = start_system(workers=("slow",), kafka_settings={"partitions": 1})
    long_task = system.api.create_task("slow", {"sleep_s": 4}, start=True)
    system.wait_until("the long task runs", lambda: system.statuses([long_task])[0]["status"]
                      == "running")
    # Member ids start with client.id and the range assignor gives the one partition to
    # the first in order: "0-..." sorts before the worker's "rdkafka-...".
    other = Consumer({"bootstrap.servers": system.env["KAFKA_BOOTSTRAP_SERVERS"],
                      "group.id": system.services["slow"]["consumer_id"], "client.id": "0-other",
                      "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        other.subscribe([system.services["slow"]["topic_name"]])
        wait_until("the partition moves to the other member",
                   lambda: other.poll(0.2) is not None or bool(other.assignment()))
        system.wait_final([long_task])
    finally:
        other.close()  # the partition goes back to the worker, which is idle now
    after = system.api.create_task("slow", {}, start=True)
    assert system.wait_final([after])[0]["status"] == "finished"


def test_three_dispatchers_publish_each_task_once(start_system):
    """Replicas of the dispatcher relay a service one at a time: one message per task, all
    run."""
    system = start_system(workers=("slow",))
    system.start_dispatcher("dispatcher-2")
    system.start_dispatcher("dispatcher-3")
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda i: system.api.create_task("slow", {}, start=True), range(100)))
    statuses = system.wait_final(ids, timeout_s=180)
    assert Counter(s["status"] for s in statuses) == {"finished": 100}
    messages = topic_messages(system.env["KAFKA_BOOTSTRAP_SERVERS"], system.services["slow"]["topic_name"])
    assert set(messages) == {(task_id, 1) for task_id in ids}
    assert set(messages.values()) == {1}, "a task was published more than once"


def test_a_dispatcher_that_stops_hands_its_services_to_another_at_once(start_system):
    """Two dispatchers, holds of 60 s: the one relaying the service is stopped (SIGTERM),
    and a task started next runs well before its hold would have ended."""
    system = start_system(workers=("slow",), lifecycle={"dispatch_claim_s": 60}, metrics=True)
    system.start_dispatcher("dispatcher-2", metrics_port=free_port())
    first = system.api.create_task("slow", {}, start=True)
    assert system.wait_final([first])[0]["status"] == "finished"

    def relaying() -> dict[str, float]:
        return {proc: value for proc, value in
                system.metric("taskmill_dispatcher_relaying", service="slow").items()
                if proc.startswith("dispatcher")}

    [holder] = [proc for proc, value in relaying().items() if value == 1]
    assert system.stop(holder) == 0
    after = system.api.create_task("slow", {}, start=True)
    assert system.wait_final([after], timeout_s=30)[0]["status"] == "finished"
    assert list(relaying().values()) == [1]


def test_a_dispatcher_restarted_after_a_crash_takes_its_services_back_at_once(start_system):
    """kill -9 the only dispatcher, holds of 60 s: the one started in its place on the same
    host finds the holder gone and relays at once; a task started next runs well before the
    dead one's hold would have ended."""
    system = start_system(workers=("slow",), lifecycle={"dispatch_claim_s": 60})
    first = system.api.create_task("slow", {}, start=True)
    assert system.wait_final([first])[0]["status"] == "finished"
    system.kill("dispatcher")
    system.start_dispatcher()
    after = system.api.create_task("slow", {}, start=True)
    assert system.wait_final([after], timeout_s=30)[0]["status"] == "finished"
