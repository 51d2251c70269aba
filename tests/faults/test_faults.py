"""Faults on the real stack, processes killed by pid: no task is lost, none ends twice."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pymongo
import pytest

from taskmill.errors import ApiError
from taskmill.schema import FINAL
from tests.faults.conftest import audit
from tests.system import System, create_started

pytestmark = [pytest.mark.e2e, pytest.mark.faults]


def running(system: System, task_ids: list[str]) -> list[str]:
    return [s["task_id"] for s in system.statuses(task_ids) if s["status"] == "running"]


def test_a_worker_killed_mid_task_is_replaced_and_the_task_ends_once(start_system, fast_lifecycle,
                                                                     fast_kafka):
    """kill -9 a worker mid-task: its lease lapses, the task runs again elsewhere, ends once."""
    system = start_system(workers=(), lifecycle=fast_lifecycle, kafka_settings=fast_kafka)
    system.start_worker("slow", "worker-1")
    ids = create_started(system, 6, sleep_s=1.5)
    system.wait_until("a task is running", lambda: running(system, ids))
    [victim] = running(system, ids)
    system.start_worker("slow", "worker-2")
    system.kill("worker-1")

    system.wait_final(ids, timeout_s=120)
    results = {r["task_id"]: r for r in audit(system, "kill -9 a worker mid-task", ids)}
    assert {r["status"] for r in results.values()} == {"finished"}
    lost = results[victim]
    assert lost["attempt"] >= 2 and lost["data"]["attempt"] == lost["attempt"]
    assert any("worker lost" in (e["message"] or "") for e in lost["history"])


def test_the_dispatcher_killed_mid_burst_loses_nothing_and_runs_nothing_twice(start_system,
                                                                              fast_lifecycle, fast_kafka):
    """kill -9 the dispatcher again and again while it publishes: duplicates run once."""
    system = start_system(workers=("slow",), lifecycle=fast_lifecycle, kafka_settings=fast_kafka)
    ids: list[str] = []
    # Killed as soon as part of the burst is recorded: what it had put on the topic but not
    # yet recorded goes out again under the next dispatcher (extra_messages in the table).
    with ThreadPoolExecutor(1) as pool:
        burst = pool.submit(create_started, system, 200)
        for _ in range(5):
            before = _published(system)
            system.wait_until("the dispatcher publishes, or nothing is left to publish",
                              lambda n=before: _published(system) > n or _drained(system, burst))
            if _drained(system, burst):
                break
            system.kill("dispatcher")
            system.start_dispatcher()
        ids = burst.result()
    system.wait_final(ids, timeout_s=240)
    results = audit(system, "kill -9 the dispatcher mid-burst", ids)
    assert {r["status"] for r in results} == {"finished"}


def _drained(system: System, burst: Future[list[str]]) -> bool:
    return burst.done() and _count(system, {"status": "ready"}) == 0


def _published(system: System) -> int:
    """How many of the system's tasks have left `ready` (were published at least)."""
    return _count(system, {"status": {"$ne": "ready"}})


def _count(system: System, query: dict[str, object]) -> int:
    """The system's tasks matching query, counted in the store itself: the kept counts the
    api's list answers with can be off by a few here (a dispatcher killed between a task's
    update and its count's, which the dispatcher corrects minutes later)."""
    db = system.env["MONGO_DBNAME"]
    with pymongo.MongoClient(system.env["MONGO_URI"]) as client:
        return client[db][db].count_documents(query)


def test_kafka_down_keeps_started_tasks_ready_then_delivers_them_all(start_system, private_server,
                                                                     fast_lifecycle, fast_kafka):
    """Kafka stopped during a burst: starts are recorded, nothing is published, all run after."""
    kafka = private_server("kafka")
    system = start_system(workers=("slow",), kafka=kafka.address, lifecycle=fast_lifecycle,
                          kafka_settings=fast_kafka)
    before = create_started(system, 20)
    # All done first: while Kafka is down no worker takes what is published, so with
    # published tasks still untaken the relay (rightly) publishes no more and never
    # finds the broker gone. Share-group workers on a freshly started broker are slow to
    # take their first records (seen in CI).
    system.wait_final(before)
    kafka.stop()
    during = create_started(system, 40)
    dispatcher_log = system.log_path("dispatcher")
    system.wait_until("the dispatcher finds the broker gone",
                      lambda: "publication not confirmed" in dispatcher_log.read_text())
    held = [system.api.result_task(t) for t in during]
    assert {r["status"] for r in held} == {"ready"}
    assert all(r["history"][-1]["message"] == "started" for r in held)

    kafka.start()
    system.wait_final(before + during, timeout_s=180)
    results = audit(system, "Kafka stopped and restarted", before + during)
    assert {r["status"] for r in results} == {"finished"}


def test_a_dispatcher_stopped_while_the_broker_does_not_answer_leaves_within_its_grace(
        start_system, private_server):
    """SIGTERM while a relay round waits for a broker that stopped answering (holds of 60 s
    give the broker 43 s): the dispatcher leaves within its shutdown grace instead, the task
    it was publishing stays ready in the outbox, and it runs once the broker is back."""
    kafka = private_server("kafka")
    system = start_system(workers=("slow",), kafka=kafka.address, metrics=True,
                          lifecycle={"dispatch_claim_s": 60, "shutdown_grace_s": 2})
    first = system.api.create_task("slow", {}, start=True)
    assert system.wait_final([first])[0]["status"] == "finished"

    def rounds() -> float:
        return sum(system.metric("taskmill_dispatcher_batch_size_count").values())

    published = rounds()
    kafka.stop()
    held = system.api.create_task("slow", {}, start=True)
    system.wait_until("the relay waiting for the broker's answer", lambda: rounds() > published)
    assert system.stop("dispatcher", timeout_s=15) == 0  # not the 43 s the round would wait
    assert system.api.result_task(held)["status"] == "ready"

    kafka.start()
    system.start_dispatcher()
    assert system.wait_final([held], timeout_s=120)[0]["status"] == "finished"


def test_mongodb_down_under_load_is_503_then_everything_completes(start_system, private_server,
                                                                   fast_lifecycle, task_db, fast_kafka):
    """The task store stopped under load: the api says 503, then all recover, none half-written."""
    mongo = private_server("ferretdb")
    system = start_system(workers=("slow",), mongo=mongo.address, lifecycle=fast_lifecycle,
                          kafka_settings=fast_kafka)
    ids = create_started(system, 30, sleep_s=0.2)
    system.wait_until("tasks are running", lambda: any(
        s["status"] in ("running", *FINAL) for s in system.statuses(ids)))
    mongo.stop()
    with pytest.raises(ApiError) as refused:
        system.api.status_task(ids[:1])
    assert refused.value.http_status == 503
    mongo.start()

    system.wait_final(ids, timeout_s=180)
    results = audit(system, "FerretDB stopped and restarted", ids)
    assert {r["status"] for r in results} == {"finished"}
    with pymongo.MongoClient(mongo.address) as client:
        for doc in client[task_db][task_db].find({"task_id": {"$in": ids}}):
            assert doc["result"] is not None and doc["end_time"] >= doc["start_time"]
            assert doc["lease_until"] is None and doc["start_requested_at"] is None


def test_sigterm_to_every_service_under_load_loses_nothing(start_system, fast_lifecycle, fast_kafka):
    """A rolling restart of everything, as Kubernetes does it: each exits cleanly, none lost."""
    system = start_system(workers=("slow",), lifecycle=fast_lifecycle, kafka_settings=fast_kafka)
    ids = create_started(system, 40, sleep_s=0.3)
    system.wait_until("a task is running", lambda: running(system, ids))
    names = list(system.procs)
    for name in names:
        system.procs[name].send_signal(signal.SIGTERM)
    grace = fast_lifecycle["shutdown_grace_s"]
    began = time.monotonic()
    codes = {name: system.stop(name, timeout_s=grace + 10) for name in names}
    assert codes == dict.fromkeys(names, 0), system.logs()
    assert time.monotonic() - began < grace + 10

    system.start_api()
    system.start_dispatcher()
    system.start_worker("slow")
    system.wait_final(ids, timeout_s=180)
    results = audit(system, "SIGTERM to every service", ids)
    assert {r["status"] for r in results} == {"finished"}


def test_a_stalled_worker_waking_up_late_cannot_overwrite_the_new_attempt(start_system,
                                                                         fast_lifecycle, fast_kafka):
    """A worker frozen past its lease: the task reruns elsewhere; the late report is refused."""
    system = start_system(workers=(), lifecycle=fast_lifecycle, kafka_settings=fast_kafka)
    stalled = system.start_worker("slow", "worker-1")
    [task_id] = create_started(system, 1, sleep_s=2)
    system.wait_until("the task is running", lambda: running(system, [task_id]))
    os.kill(stalled.pid, signal.SIGSTOP)
    try:
        rescuer = system.start_worker("slow", "worker-2")
        [status] = system.wait_final([task_id], timeout_s=120)
    finally:
        os.kill(stalled.pid, signal.SIGCONT)
    log = system.log_path("worker-1")
    system.wait_until("the stalled worker's late report is refused",
                      lambda: "is stale" in log.read_text(errors="replace"))

    [result] = audit(system, "worker stalled past its lease", [task_id])
    assert result["status"] == "finished" and result["attempt"] == 2
    assert result["data"] == {"pid": rescuer.pid, "attempt": 2}
    assert system.api.result_task(task_id) == result  # the late report changed nothing
