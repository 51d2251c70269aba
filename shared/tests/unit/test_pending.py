"""The sentence a waiting task gets, from its own fields and its service's state: the first
cause that holds, in the order a user needs them (the facts themselves, read from the real
store and system, are tested in shared/tests/integration/test_pending.py and
tests/e2e/test_pending_reasons.py)."""

from datetime import UTC, datetime, timedelta

from taskmill.store.pending import reason
from taskmill.store.service_states import Breaker, BreakerState, ServiceState

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
STALE = timedelta(seconds=120)
LIVE = ServiceState("aaa", seen_at=NOW, workers=2)


def task(status="ready", outbox=True, due=NOW):
    return {"task_id": "ts_aaa_1", "service": "aaa", "status": status, "outbox": outbox,
            "start_requested_at": due if outbox else None}


def why(t, state=LIVE, position=None):
    return reason(t, state, position, NOW, STALE)


def test_not_started_and_queued():
    assert why(task(outbox=False)) == "not started"
    assert why(task(), position=0) == "queued: no task of aaa ahead"
    assert why(task(), position=1) == "queued: 1 task of aaa ahead"
    assert why(task(), position=37) == "queued: 37 tasks of aaa ahead"
    assert why(task(), position=None) == "queued: more than 100 tasks of aaa ahead"
    assert why(task("waiting", outbox=False), position=3) == "queued: 3 tasks of aaa ahead"


def test_retry_backoff_comes_first():
    later = NOW + timedelta(seconds=20)
    paused = ServiceState("aaa", seen_at=NOW, breaker=Breaker(BreakerState.OPEN, 10, later, 60))
    assert why(task("waiting", due=later), paused) == "retry after 2026-12-01T10:00:20.000Z"


def test_publication_delayed_by_the_broker_or_by_no_dispatcher():
    since = NOW - timedelta(seconds=30)
    failing = ServiceState("aaa", seen_at=NOW, workers=1, publish_failing_since=since)
    assert why(task(), failing, 0) == "publication delayed: Kafka unavailable since 2026-12-01T09:59:30.000Z"
    gone = ServiceState("aaa", seen_at=NOW - timedelta(seconds=121), workers=1)
    assert why(task(), gone, 0) == "publication delayed: no dispatcher running since 2026-12-01T09:57:59.000Z"
    assert why(task(), ServiceState("aaa"), 0) == "publication delayed: no dispatcher running"
    # A published task needs no dispatcher nor broker: it waits for a worker.
    assert why(task("waiting", outbox=False), gone, 0) == "queued: no task of aaa ahead"


def test_paused_by_the_breaker_open_or_trying():
    until = NOW + timedelta(seconds=60)
    opened = ServiceState("aaa", seen_at=NOW, breaker=Breaker(BreakerState.OPEN, 10, until, 60))
    assert why(task(), opened, 4) == ("service aaa paused after 10 failures in a row; next try "
                                      "at 2026-12-01T10:01:00.000Z")
    trying = ServiceState("aaa", seen_at=NOW, breaker=Breaker(BreakerState.HALF_OPEN, 10, until,
                                                               60, since=NOW, trial="t"))
    assert why(task(), trying, 4).endswith("one task on trial since 2026-12-01T10:00:00.000Z")
    # Already on Kafka: the breaker does not hold it back.
    assert why(task("waiting", outbox=False), opened, 0) == "queued: no task of aaa ahead"


def test_no_live_worker():
    since = NOW - timedelta(minutes=5)
    none = ServiceState("aaa", seen_at=NOW, workers=0, no_worker_since=since)
    expected = "no live worker for aaa since 2026-12-01T09:55:00.000Z"
    assert why(task(), none, 3) == expected
    assert why(task("waiting", outbox=False), none, 0) == expected
