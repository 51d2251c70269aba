"""The outbox relay: read started tasks, publish them, record the broker's confirmation.

A dispatcher relays only the services it holds (`relay_holds`: one dispatcher at a time
per service), so what it reads to publish is its own without a write per task. Each
service gets no more published tasks than its workers can take soon (see `capacity`) and
its circuit breaker allows (see `watch` and `breaker`): the rest of its backlog waits in
the store, where each round reads the highest priority first, so a priority task started
behind a long backlog is published at the next free place instead of behind it.

One task never stops the others: a message the broker (or the producer, before sending)
refuses for what it is, too large or not encodable, ends its task failed with the reason
and the relay goes on; only a broker that does not answer makes a task wait for the next
round.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException

from taskmill.codec import TaskMessage
from taskmill.config import Config
from taskmill.logs import task_fields
from taskmill.schema import Clock, utcnow
from taskmill.store import Task, TaskStore
from taskmill_dispatcher import metrics

log = logging.getLogger(__name__)


class Watch(Protocol):
    """What the relay tells of each service's publications, and the room its breaker leaves
    (`watch.ServiceWatch`)."""

    def room(self, service: str, room: int) -> int: ...

    def published(self, service: str, tasks: Sequence[Task]) -> None: ...

    def not_published(self, service: str, error: str) -> None: ...


class Holds(Protocol):
    """Which services this dispatcher relays (`relay_holds.RelayHolds`)."""

    def holds(self, service: str) -> bool: ...


class Producer(Protocol):
    """The part of confluent_kafka.Producer the relay uses."""

    def produce(self, topic: str, value: bytes, key: bytes, headers: Any,
                on_delivery: Callable[[Any, Any], None]) -> None: ...

    def poll(self, timeout: float) -> int: ...

    def flush(self, timeout: float) -> int: ...


# How often a round waiting for the broker's answers looks whether it is asked to stop.
ANSWERS_SLICE_S = 0.1

# Errors that say the message itself is unacceptable: publishing it again cannot help.
REFUSALS = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_MSG_SIZE,
                      KafkaError.INVALID_MSG, KafkaError.INVALID_RECORD,
                      KafkaError.RECORD_LIST_TOO_LARGE})


@dataclass
class _Outcome:
    task: Task
    error: Any = None
    done: bool = False
    refused: str | None = None  # why the message can never be published

    @property
    def confirmed(self) -> bool:
        return self.done and self.error is None and self.refused is None

    def settle(self, error: Any) -> None:
        """Record the broker's answer (error None: confirmed)."""
        self.error, self.done = error, True
        if error is not None and error.code() in REFUSALS:
            self.refused = f"the broker refused the task's message: {error.str()}"


def delivery_timeout_s(config: Config) -> float:
    """How long the broker may take to confirm a message.

    Publication must settle well within a service's relay hold (renewed with four fifths
    left: `relay_holds`), or a second dispatcher could take the service over and publish
    the task again while this one still waits for the broker.
    """
    return config.lifecycle.dispatch_claim_s * 0.7


class Relay:
    """Moves started tasks from the store to their services' topics, at least once."""

    def __init__(self, config: Config, store: TaskStore, producer: Producer,
                 capacity: Callable[[], Mapping[str, int]], watch: Watch, holds: Holds,
                 batch_size: int = 200, clock: Clock = utcnow,
                 stopping: threading.Event | None = None) -> None:
        self._config = config
        self._stopping = stopping or threading.Event()  # set: the dispatcher is stopping
        self._store = store
        self._producer = producer
        self._capacity = capacity
        self._watch = watch
        self._holds = holds
        self._batch_size = batch_size
        self._clock = clock
        # Services whose last batch filled their room: more may be due as soon as there is room.
        self._backlogged: set[str] = set()
        # The producer fails a message after delivery_timeout_s; wait a little longer.
        self._flush_timeout_s = delivery_timeout_s(config) + 1.0

    @property
    def backlogged(self) -> bool:
        """Whether a service had more due tasks than room at its last round (its workers
        will make room soon: worth looking again before the idle wait)."""
        return bool(self._backlogged)

    def run_once(self) -> int:
        """Publish one batch of due tasks; return how many the broker confirmed."""
        tasks = self._due()
        if not tasks:
            return 0
        metrics.BATCH_SIZE.observe(len(tasks))
        outcomes = [self._produce(task) for task in tasks]
        self._await_answers()
        confirmed = [o.task for o in outcomes if o.confirmed]
        refused = [o for o in outcomes if o.refused]
        failed = [o for o in outcomes if not o.confirmed and not o.refused]
        for outcome in failed:
            self._not_published(outcome)
        for outcome in refused:
            self._refuse(outcome.task, str(outcome.refused))
        self._store.outbox.mark_published(confirmed)
        now = self._clock()
        by_service: dict[str, list[Task]] = defaultdict(list)
        for task in confirmed:
            by_service[task["service"]].append(task)
            metrics.PUBLISHED.labels(task["service"]).inc()
            waited = (now - task["start_requested_at"]).total_seconds()
            metrics.START_TO_PUBLISH_SECONDS.labels(task["service"]).observe(max(waited, 0.0))
        for service, tasks in by_service.items():
            self._watch.published(service, tasks)
        return len(confirmed)

    def _due(self) -> list[Task]:
        """The due tasks of each service this dispatcher relays, as many as it has room
        for, once it has taken half of what it was given."""
        capacity = self._capacity()
        if not self._store.outbox.any_due():
            self._backlogged.clear()
            return []
        due: list[Task] = []
        for service in self._config.services:
            if not self._holds.holds(service):  # another dispatcher relays it
                self._backlogged.discard(service)
                continue
            cap = capacity.get(service, 1)
            # Topped up once half is taken: fewer, larger batches than one task at a time.
            waiting = self._store.outbox.in_flight(service, at_most=cap // 2 + 1)
            if waiting > cap // 2:
                continue
            room = self._watch.room(service, min(cap - waiting, self._batch_size))
            if room <= 0:  # paused by its breaker
                self._backlogged.discard(service)
                continue
            tasks = self._store.outbox.due(room, service)
            if len(tasks) == room:
                self._backlogged.add(service)
            else:
                self._backlogged.discard(service)
            due += tasks
        return due

    def _await_answers(self) -> None:
        """Wait for the broker to answer every message produced, up to the flush timeout,
        but no longer once the dispatcher is asked to stop: a broker that does not answer
        would hold a stop for as long (43 s by default) where the dispatcher has
        `shutdown_grace_s` to leave. A message not answered by then leaves its task in the
        outbox, due again (for the dispatcher that relays the service next)."""
        deadline = time.monotonic() + self._flush_timeout_s
        while self._producer.flush(min(ANSWERS_SLICE_S, max(deadline - time.monotonic(), 0.0))):
            if self._stopping.is_set() or time.monotonic() >= deadline:
                return

    def _produce(self, task: Task) -> _Outcome:
        service = self._config.service(task["service"])
        message = TaskMessage(task_id=task["task_id"], service=task["service"],
                              source_name=task["source_name"], condition=task["condition"],
                              attempt=task["attempt"])
        outcome = _Outcome(task)
        try:
            value = message.encode()
        except (TypeError, ValueError) as ex:  # e.g. a lone surrogate stored by an older api
            outcome.refused = f"the task's condition cannot be encoded as a message: {ex}"
            return outcome
        try:
            self._producer.produce(service.topic_name, value=value, key=message.key(),
                                   headers=message.headers(),
                                   on_delivery=lambda error, _msg: outcome.settle(error))
        except KafkaException as ex:  # refused before sending (larger than message.max.bytes)
            outcome.settle(ex.args[0])
        except BufferError as ex:  # the producer's queue is full: next round
            outcome.error = ex
        self._producer.poll(0)
        return outcome

    def _refuse(self, task: Task, reason: str) -> None:
        metrics.PUBLISH_REFUSED.labels(task["service"]).inc()
        log.error("task failed: %s", reason, extra=task_fields(task))
        self._store.outbox.refuse(task, reason)

    def _not_published(self, outcome: _Outcome) -> None:
        """A task whose message the broker did not confirm stays in the outbox: due again
        next round (unanswered when the dispatcher stops: not counted as a failure of the
        broker's)."""
        task = outcome.task
        if not outcome.done and self._stopping.is_set():  # no answer yet: not the broker's failure
            log.info("stopping before the broker answered; the task stays in the outbox",
                     extra=task_fields(task))
            return
        error = str(outcome.error or "no answer from the broker")
        metrics.PUBLISH_FAILURES.labels(task["service"]).inc()
        log.warning("publication not confirmed (%s); will retry", error, extra=task_fields(task))
        self._watch.not_published(task["service"], error)
