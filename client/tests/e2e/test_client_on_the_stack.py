"""The Python client against the whole system: every method, and every error as its own
exception carrying the api's message."""

from __future__ import annotations

import threading

import pytest

from taskmill.token_config import digest
from taskmill_client import (
    ApiUnreachable,
    Conflict,
    Created,
    Forbidden,
    InvalidRequest,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    Taskmill,
    TaskNotFound,
    Unauthorized,
    WaitTimeout,
)
from tests.servers import free_port
from tests.system import TOKEN

pytestmark = pytest.mark.e2e

WORKER, LIMITED = "worker-secret-1", "limited-secret-1"
SETTINGS = {"tokens": [
    {"name": "worker-slow", "role": "worker", "services": ["slow"], "sha256": digest(WORKER)},
    {"name": "limited", "role": "client", "sha256": digest(LIMITED), "rate_per_s": 0.1, "burst": 1}]}


@pytest.fixture
def url(start_system) -> str:
    system = start_system(workers=("slow",), settings=SETTINGS)
    return f"http://127.0.0.1:{system.api_port}"


def test_every_method(url):
    with Taskmill(url, TOKEN) as tm:
        assert "slow" in tm.services()
        quick = tm.create("slow", {"sleep_s": 0.1}, start=True, priority=7)
        assert quick.created
        idle = tm.create("slow", {"n": 1}).task_id
        tm.update(idle, {"n": 2})
        [waiting] = tm.status([idle])
        assert (waiting.status, waiting.pending_reason, waiting.queue_position) == (
            "ready", "not started", None)
        rounds = []
        done = tm.wait([quick.task_id, idle + "-unknown"], timeout_s=60, poll_s=0.2,
                       on_progress=rounds.append)
        assert done[quick.task_id].status == "finished" and not done[idle + "-unknown"].known
        assert rounds and len(rounds[-1]) == 2
        result = tm.result(quick.task_id)
        assert result.data["attempt"] == 1 and [e.status for e in result.history][-1] == "finished"
        assert result.spend_time is not None and result.end_time >= result.start_time
        page = tm.list(service="slow", status="ready", page_size=5)
        assert page.total == 1 and page.tasks[0].task_id == idle
        tm.start(idle)
        again = tm.create("slow", {"sleep_s": 0.1}, start=True, idempotency_key="once")
        assert tm.create("slow", {"sleep_s": 0.1}, start=True, idempotency_key="once") == Created(
            again.task_id, created=False)
        long = tm.create("slow", {"sleep_s": 30}).task_id
        assert tm.cancel(long, "changed my mind") == "failed"
        assert tm.result(long).message == "cancelled: changed my mind"


def test_every_error_is_its_own_exception(url):
    with Taskmill(url, TOKEN) as tm:
        with pytest.raises(InvalidRequest, match="service"):
            tm.create("nope", {})
        with pytest.raises(TaskNotFound) as missing:
            tm.result("ts_slow_" + "0" * 32)
        assert missing.value.status == 404
        task_id = tm.create("slow", {"sleep_s": 30}, start=True).task_id
        with pytest.raises(Conflict, match="already started|running|waiting"):
            tm.start(task_id)
        with pytest.raises(PayloadTooLarge):
            tm.create("slow", {"big": "x" * 1_100_000})
        with pytest.raises(WaitTimeout) as timed_out:
            tm.wait([task_id], timeout_s=0.5, poll_s=0.2)
        assert timed_out.value.statuses[0].task_id == task_id
        tm.cancel(task_id)
    with Taskmill(url, "wrong") as tm, pytest.raises(Unauthorized):
        tm.services()
    with Taskmill(url, WORKER) as tm, pytest.raises(Forbidden, match="worker token"):
        tm.create("slow", {})
    with Taskmill(url, LIMITED, retries=0) as tm:
        tm.services()
        with pytest.raises(RateLimited) as limited:
            tm.services()
        assert limited.value.retry_after >= 1
    with Taskmill(f"http://127.0.0.1:{free_port()}", TOKEN, retries=1, sleep=lambda s: None) as tm:
        with pytest.raises(ApiUnreachable):
            tm.services()


def test_a_store_outage_is_503_and_reads_ride_it_out(start_system, private_server):
    store = private_server("ferretdb")
    system = start_system(workers=(), mongo=store.address)
    url = f"http://127.0.0.1:{system.api_port}"
    with Taskmill(url, TOKEN) as tm:
        task_id = tm.create("slow", {}).task_id
    store.stop()
    with Taskmill(url, TOKEN, retries=0) as tm, pytest.raises(ServiceUnavailable):
        tm.status([task_id])
    restart = threading.Timer(1.0, store.start)
    restart.start()
    try:
        with Taskmill(url, TOKEN, retries=8) as tm:  # backoff up to 5 s a try: about 20 s
            assert tm.status([task_id])[0].status == "ready"
    finally:
        restart.join()
