"""The relay's decisions for each message of a batch: confirmed ones are recorded, ones the
broker refuses for what they are end failed with the reason, others wait for the next
round; none of them stops the rest. Producer and store are in-memory stand-ins; the
relay against the real Kafka and store is in tests/e2e and tests/faults."""

import threading
from datetime import UTC, datetime
from types import SimpleNamespace

from confluent_kafka import KafkaError, KafkaException

from taskmill.config import load_config
from taskmill_dispatcher.relay import Relay
from tests.helpers import ROOT
from tests.system import wait_until

CONFIG = load_config(ROOT / "config" / "config.yaml", {})
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def task(n: int, condition=None) -> dict:
    return {"task_id": f"ts_aaa_{n:032x}", "service": "aaa", "source_name": "mongo",
            "condition": condition or {"n": n}, "attempt": 1, "status": "ready",
            "start_requested_at": NOW}


class Outbox:
    """Due tasks (`batch`) leave it once published or refused."""

    def __init__(self, batch, in_flight=None):
        self.batch, self.published, self.refused = batch, [], []
        self.waiting = dict(in_flight or {})
        self.asked: dict[str, int] = {}  # service -> the room a round asked for
        self.reads = 0

    def any_due(self):
        self.reads += 1
        return bool(self.batch)

    def in_flight(self, service, at_most):
        self.reads += 1
        return min(self.waiting.get(service, 0), at_most)

    def due(self, limit, service):
        self.reads += 1
        self.asked[service] = limit
        return [t for t in self.batch if t["service"] == service][:limit]

    def mark_published(self, tasks):
        self.published += [t["task_id"] for t in tasks]
        self.batch = [t for t in self.batch if t not in tasks]

    def refuse(self, task, reason):
        self.refused.append((task["task_id"], reason))
        self.batch.remove(task)


class Holds:
    """This dispatcher holds the services in `held`."""

    def __init__(self, held=("aaa", "bbb")):
        self.held = set(held)

    def holds(self, service):
        return service in self.held


class Watch:
    """Records what the relay tells; `limits` caps a service's room (its breaker)."""

    def __init__(self, limits=None):
        self.limits = dict(limits or {})
        self.confirmed: dict[str, list[str]] = {}
        self.errors: dict[str, list[str]] = {}

    def room(self, service, room):
        return min(room, self.limits.get(service, room))

    def published(self, service, tasks):
        self.confirmed.setdefault(service, []).extend(t["task_id"] for t in tasks)

    def not_published(self, service, error):
        self.errors.setdefault(service, []).append(error)


class Producer:
    """Answers each message by its condition: {"answer": error code}, or raises on produce."""

    def __init__(self):
        self.pending = []

    def produce(self, topic, value, key, headers, on_delivery):
        if b'"raise"' in value:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "too large"))
        if b'"full"' in value:
            raise BufferError("queue full")
        code = KafkaError._MSG_TIMED_OUT if b'"timeout"' in value else (
            KafkaError.INVALID_RECORD if b'"invalid"' in value else None)
        self.pending.append((on_delivery, None if code is None else KafkaError(code, "refused")))

    def poll(self, timeout):
        return 0

    def flush(self, timeout):
        for deliver, error in self.pending:
            deliver(error, None)
        self.pending = []
        return 0


def run(batch, watch=None):
    outbox = Outbox(batch)
    relay = Relay(CONFIG, SimpleNamespace(outbox=outbox), Producer(), lambda: {"aaa": 100},
                  watch or Watch(), Holds(), clock=lambda: NOW)
    confirmed = relay.run_once()
    return confirmed, outbox


def test_a_service_gets_only_the_room_its_workers_have():
    """Capacity minus what is published and untaken is read, per service, once at most
    half of it is untaken; a round that fills the room says more may be due."""
    outbox = Outbox([task(n) for n in range(10)], in_flight={"aaa": 3, "bbb": 2})
    relay = Relay(CONFIG, SimpleNamespace(outbox=outbox), Producer(),
                  lambda: {"aaa": 6, "bbb": 2}, Watch(), Holds(), clock=lambda: NOW)
    assert relay.run_once() == 3
    assert outbox.asked == {"aaa": 3} and relay.backlogged
    outbox.waiting = {"aaa": 4, "bbb": 2}
    outbox.asked = {}
    assert relay.run_once() == 0 and outbox.asked == {}  # more than half untaken: not yet
    outbox.waiting = {"aaa": 0}
    assert relay.run_once() == 6
    assert outbox.asked == {"aaa": 6, "bbb": 2} and relay.backlogged  # aaa's room was filled
    outbox.waiting = {}
    assert relay.run_once() == 1 and not relay.backlogged  # the last one: room to spare


def test_an_idle_round_reads_the_store_once_and_a_start_is_published_the_next():
    """With nothing due the relay asks the store once, not twice per service."""
    outbox = Outbox([])
    relay = Relay(CONFIG, SimpleNamespace(outbox=outbox), Producer(), lambda: {"aaa": 4},
                  Watch(), Holds(), clock=lambda: NOW)
    assert relay.run_once() == 0 and outbox.reads == 1 and outbox.asked == {}
    outbox.batch = [task(1)]
    assert relay.run_once() == 1 and outbox.published == [task(1)["task_id"]]
    assert outbox.asked["aaa"] == 4 and not relay.backlogged


def test_each_message_of_a_batch_gets_what_its_answer_calls_for():
    ok, too_large, invalid, timeout, full, unencodable, last = (
        task(1), task(2, {"raise": 1}), task(3, {"invalid": 1}), task(4, {"timeout": 1}),
        task(5, {"full": 1}), task(6, {"bad": "\ud800"}), task(7))
    watch = Watch()
    confirmed, outbox = run([ok, too_large, invalid, timeout, full, unencodable, last], watch)
    assert confirmed == 2 and outbox.published == [ok["task_id"], last["task_id"]]
    assert watch.confirmed == {"aaa": outbox.published}
    assert len(watch.errors["aaa"]) == 2  # the unanswered ones: the broker's health
    assert [t["task_id"] for t in outbox.batch] == [timeout["task_id"], full["task_id"]]  # due again
    refused = dict(outbox.refused)
    assert set(refused) == {too_large["task_id"], invalid["task_id"], unencodable["task_id"]}
    assert "refused the task's message" in refused[too_large["task_id"]]
    assert "cannot be encoded" in refused[unencodable["task_id"]]


def test_a_service_paused_by_its_breaker_gets_nothing_and_others_go_on():
    bbb = {**task(9), "task_id": f"ts_bbb_{9:032x}", "service": "bbb"}
    outbox = Outbox([task(1), task(2), bbb])
    watch = Watch(limits={"aaa": 0})
    relay = Relay(CONFIG, SimpleNamespace(outbox=outbox), Producer(),
                  lambda: {"aaa": 10, "bbb": 10}, watch, Holds(), clock=lambda: NOW)
    assert relay.run_once() == 1
    assert outbox.asked == {"bbb": 10} and watch.confirmed == {"bbb": [bbb["task_id"]]}
    assert not relay.backlogged  # a paused service is not worth looking at again soon
    watch.limits = {"aaa": 1}  # half open: one trial
    assert relay.run_once() == 1 and outbox.asked["aaa"] == 1


def test_only_the_services_this_dispatcher_holds_are_relayed():
    """Another dispatcher relays bbb: its tasks are not even read here, and nothing says
    more of them may be due."""
    bbb = {**task(9), "task_id": f"ts_bbb_{9:032x}", "service": "bbb"}
    outbox = Outbox([task(1), bbb])
    holds = Holds(held=["aaa"])
    relay = Relay(CONFIG, SimpleNamespace(outbox=outbox), Producer(),
                  lambda: {"aaa": 4, "bbb": 4}, Watch(), holds, clock=lambda: NOW)
    assert relay.run_once() == 1 and outbox.published == [task(1)["task_id"]]
    assert outbox.asked == {"aaa": 4} and not relay.backlogged
    holds.held = {"aaa", "bbb"}  # the other let go
    assert relay.run_once() == 1 and outbox.published[-1] == bbb["task_id"]


class Unanswered(Producer):
    """A broker that answers nothing: each flush waits out its timeout."""

    def __init__(self):
        super().__init__()
        self.flushes = 0

    def flush(self, timeout):
        self.flushes += 1
        threading.Event().wait(timeout)
        return len(self.pending)


def test_a_stop_does_not_wait_for_a_broker_that_does_not_answer():
    """Asked to stop while the broker has not answered a round's messages, the relay ends
    the round at once, not after the 43 s it otherwise gives the broker: the tasks stay in
    the outbox, due again, and the breaker is told of no failure of the broker's."""
    outbox, watch, stopping, producer = Outbox([task(1), task(2)]), Watch(), threading.Event(), Unanswered()
    relay = Relay(CONFIG, SimpleNamespace(outbox=outbox), producer, lambda: {"aaa": 10}, watch,
                  Holds(), clock=lambda: NOW, stopping=stopping)
    confirmed = []
    round_ = threading.Thread(target=lambda: confirmed.append(relay.run_once()), daemon=True)
    round_.start()
    wait_until("the round waiting for the broker", lambda: producer.flushes > 0, 10)
    stopping.set()
    round_.join(10)
    assert not round_.is_alive() and confirmed == [0]
    assert outbox.published == [] and len(outbox.batch) == 2 and watch.errors == {}
