"""The worker loop: take a message, report running, run the algorithm, report, let go.

At least once: a message is let go of (its offset stored, or its share-group record
accepted) only once the api has its task: after the outcome's report in a consumer
group, after the `running` report in a share group (`feeds` says why).
In a backlog (the next message already fetched), a task's outcome and the next task's
`running` go in one request (a list of reports), each answered and acted on as if sent
alone; the message of the first is let go of before the second is handled. A worker of
quick tasks (its last run ended within QUICK_BATCH_S) claims the messages behind it in
batches (`lifecycle.worker_batch`, in a consumer group): one request says a batch's
outcomes and the next batch's `running`, and the batch's tasks then run one after the
other. Should one of them run longer than QUICK_TASK_S, the outcomes held so far are
reported at once and the batch's waiting tasks have their leases renewed with its own
(a waiting task cancelled meanwhile ends failed without running). Messages are let go
of in the order they came.
Effects once: the api refuses a `running` report for a task that is already running on
another worker, finished, failed, or at another attempt, and the worker then skips the
message.
Running the algorithm (long runs and cancelled ones included) lives in `runs`; talking to
the api (reports alone or in lists, tried again; heartbeats) in `reporting`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, ShareConsumer
from confluent_kafka.admin import AdminClient

from taskmill.client import ApiClient
from taskmill.codec import TaskMessage, decode
from taskmill.config import Config, ServiceConfig, load_config
from taskmill.errors import MessageDecodeError
from taskmill.health import Liveness, process_name
from taskmill.health import serve as serve_health
from taskmill.kafka import common_conf, consumer_conf, share_consumer_conf
from taskmill.logs import setup_logging
from taskmill.schema import Status
from taskmill.worker import metrics
from taskmill.worker.feeds import Feed, GroupFeed, ShareFeed
from taskmill.worker.reporting import RUNNING, Answer, Outcome, Reporter, task_extra
from taskmill.worker.runs import CANCELLED, LEASE_LOST, Algorithm, Runs
from taskmill.worker.sources import Sources

log = logging.getLogger("taskmill.worker")

# A worker whose last run ended within this claims the messages behind it in batches
# (`lifecycle.worker_batch`); after a longer run, one at a time.
QUICK_BATCH_S = 0.1

# How often the consumer lag gauge is refreshed (from the client's cached watermarks).
LAG_INTERVAL_S = 5.0

# A share-group record delivered more often than this without a worker starting its task
# (each taker died or hung before the api had its `running` report) ends the task failed,
# before the broker's own limit (group.share.delivery.count.limit, 5) archives it unseen.
MAX_DELIVERIES = 3

# How long a worker waits before trying again to join its group while Kafka is away.
JOIN_RETRY_S = 2.0


@dataclass(frozen=True)
class Started:
    """A message's task and the api's answer to its running report (True: taken, False:
    refused, None: not answered before the worker began to stop); while it waits in a
    batch behind a long run, whether its lease was lost or it was cancelled. `task` None:
    a message that is not a task (dealt with in its turn)."""

    task: TaskMessage | None
    msg: Any
    accepted: bool | None
    lost: threading.Event = field(default_factory=threading.Event)
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass
class Settled:
    """What became of a batch's message, acted on in the message's order: its outcome to
    report, then let go of it (`outcome` None: only let go of it). `taken`: the api's
    answer to the outcome's report once `reported` (None: not taken; the worker stops)."""

    started: Started
    outcome: Outcome | None = None
    reported: bool = False
    taken: bool | None = None


# A polled message and what it holds (see _read).
Polled = tuple[Any, TaskMessage | MessageDecodeError | None]


class Worker:
    """Runs one service's algorithm on the tasks of its topic."""

    def __init__(self, config: Config, service: ServiceConfig, algorithm: Algorithm,
                 api: ApiClient, feed: Feed, sources: Sources, liveness: Liveness) -> None:
        self._service = service
        self._feed = feed
        self._sources = sources
        # Named in its running reports: a message delivered to a second worker while the
        # first runs its task is refused to the second.
        self.name = process_name()
        self.liveness = liveness
        self.stopping = threading.Event()
        self._lag_at = 0.0  # when the lag gauge is next refreshed
        self._reporter = Reporter(api, self.name, service.name, config.lifecycle.shutdown_grace_s,
                                  self.stopping, self._idle)
        self._runs = Runs(algorithm, service.name, config.lifecycle, sources, feed,
                          self._reporter, self.stopping, self._poll_paused)
        # The most tasks claimed at once: a batch's outcomes and the next one's running
        # reports fit one request of max_status_task. A share group hands out one record
        # at a time, acknowledged as its task starts: one at a time there.
        self._batch = 1 if service.shared else max(
            1, min(config.lifecycle.worker_batch, config.max_status_task // 2))
        self._quick = False  # the last run ended within QUICK_BATCH_S

    def run(self) -> None:
        """Consume until `stopping` is set, then leave the group."""
        try:
            if not self._join():
                return
            log.info("worker %s consuming %s in %s %s", self.name, self._service.topic_name,
                     self._service.mode.replace("_", " "), self._service.consumer_id,
                     extra={"service": self._service.name})
            while not self.stopping.is_set():
                self._tick()
                msg = self._feed.next(0.5)
                if msg is not None:
                    self.handle(msg)
        finally:
            self._feed.close()
            self._sources.close()
            log.info("worker stopped", extra={"service": self._service.name})

    def _tick(self) -> None:
        """Between two messages: the worker is alive; the lag gauge is refreshed when due."""
        self.liveness.beat()
        if time.monotonic() >= self._lag_at:
            self._lag_at = time.monotonic() + LAG_INTERVAL_S
            self._feed.refresh_lag()

    def _join(self) -> bool:
        """Join the service's group, trying again while Kafka is away (False: stopping)."""
        while not self.stopping.is_set():
            self.liveness.beat()
            try:
                self._feed.start()
                return True
            except (KafkaException, TimeoutError) as ex:  # the broker away or slow
                log.warning("cannot join %s yet: %s", self._service.consumer_id, ex,
                            extra={"service": self._service.name})
                self.stopping.wait(JOIN_RETRY_S)
        return False

    def handle(self, msg: Any) -> None:
        """Process one polled message to the end (or give it back on shutdown), with the
        messages claimed behind it: each batch's outcomes go with the next batch's
        running reports."""
        first: Polled = (msg, _read(msg))
        behind = self._following(self._next_size() - 1) if isinstance(first[1], TaskMessage) else []
        batch = self._start([first, *behind])
        while batch:
            self._tick()
            batch = self._run_batch(batch)

    def _next_size(self) -> int:
        """How many messages to claim at once: a batch after a quick run, else one."""
        return self._batch if self._quick else 1

    def _following(self, count: int) -> list[Polled]:
        """Up to `count` messages fetched already (a backlog), up to the first that is not
        a task, which ends a batch."""
        polled: list[Polled] = []
        while len(polled) < count and not self.stopping.is_set():
            msg = self._feed.next(0)
            if msg is None:
                break
            polled.append((msg, _read(msg)))
            if not isinstance(polled[-1][1], TaskMessage):
                break
        return polled

    def _start(self, polled: list[Polled], answers: list[Answer] | None = None) -> list[Started]:
        """The polled messages with what the api said to their tasks' running reports
        (asked now, unless their `answers` came with the previous batch's outcomes)."""
        tasks = [read for _, read in polled if isinstance(read, TaskMessage)]
        if answers is None:
            answers = self._send([], tasks)
        accepted = iter(self._claimed(tasks, answers))
        return [Started(read, msg, next(accepted)) if isinstance(read, TaskMessage)
                else Started(None, msg, None) for msg, read in polled]

    def _claimed(self, tasks: list[TaskMessage], answers: list[Answer] | None) -> list[bool | None]:
        """Whether each task's running report was taken, from the api's `answers` to them
        (None: not sent together; then each is reported alone). None: not answered before
        the worker began to stop, and then neither is any after it (its message goes
        back, and with it those behind it)."""
        if answers is not None:
            return [self._reporter.answered(task, RUNNING, answer)
                    for task, answer in zip(tasks, answers, strict=True)]
        accepted: list[bool | None] = []
        for task in tasks:
            gave_up = bool(accepted) and accepted[-1] is None
            accepted.append(None if gave_up else self._reporter.report(task, RUNNING))
        return accepted

    def _run_batch(self, batch: list[Started]) -> list[Started]:
        """Run a batch's tasks in order; then report their outcomes with the running reports
        of the messages fetched behind them, and let go of each message: the next batch."""
        held: list[Settled] = []
        for i, started in enumerate(batch):
            if i:
                self._tick()
            settled = self._run(started, batch[i + 1:], held)
            if settled is None:  # stopping: it goes back, and the rest of the batch with it
                return self._settle(held, [], given_back=batch[i:])
            held.append(settled)
        # The next messages only after a task that ran: a share group polls again only once
        # the record in hand is acknowledged, which a skipped one is when it is let go of.
        ran = held[-1].outcome is not None and not self.stopping.is_set()
        return self._settle(held, self._following(self._next_size()) if ran else [])

    def _run(self, started: Started, waiting: list[Started], held: list[Settled]) -> Settled | None:
        """Run a started task of a batch (`waiting`: the batch's tasks after it; `held`:
        those before it, not yet settled): what became of it, or None to give it back."""
        task, msg = started.task, started.msg
        if task is None:
            return Settled(started)
        if started.accepted is None:
            return None  # stopping before the api answered: delivered again
        if not started.accepted:
            metrics.SKIPPED.labels(self._service.name).inc()
            return Settled(started)
        if started.lost.is_set():
            metrics.SKIPPED.labels(self._service.name).inc()
            log.warning("lease lost while waiting in the batch: not run (another attempt runs "
                        "the task)", extra=task_extra(task))
            return Settled(started)
        if started.cancel.is_set():
            metrics.TASKS.labels(self._service.name, "cancelled").inc()
            log.info("cancelled while waiting in the batch: not run", extra=task_extra(task))
            return Settled(started, CANCELLED)
        self._feed.taken(msg)
        deliveries = self._feed.deliveries(msg)
        if deliveries > MAX_DELIVERIES:
            return Settled(started, self._undeliverable(task, deliveries))
        began = time.monotonic()
        outcome = self._runs.execute(task, on_long=lambda: self._send(held, []),
                                     on_beat=lambda: self._renew(waiting))
        self._quick = time.monotonic() - began < QUICK_BATCH_S
        if outcome is None:
            return None  # on shutdown, before the outcome: delivered again
        return Settled(started, None if outcome is LEASE_LOST else outcome)

    def _renew(self, waiting: list[Started]) -> None:
        """Renew the leases of a batch's tasks that wait behind a long run (those still
        theirs: taken, neither lost nor cancelled meanwhile)."""
        for claimed in waiting:
            if claimed.task is not None and claimed.accepted and not (
                    claimed.lost.is_set() or claimed.cancel.is_set()):
                self._reporter.heartbeat(claimed.task, claimed.lost, claimed.cancel)

    def _settle(self, held: list[Settled], polled: list[Polled],
                given_back: Sequence[Started] = ()) -> list[Started]:
        """Report the held outcomes not reported yet, with the running reports of the
        `polled` messages' tasks, then let go of each held message in order (and give back
        `given_back`): the next batch. A message whose outcome was not taken (stopping)
        goes back, and so does every one after it, the polled ones included."""
        answers = self._send(held, [read for _, read in polled if isinstance(read, TaskMessage)])
        for i, settled in enumerate(held):
            if settled.outcome is not None and settled.taken is None:
                back = [*(s.started for s in held[i:]), *given_back]
                for msg in [*(started.msg for started in back), *(msg for msg, _ in polled)]:
                    self._feed.give_back(msg)
                return []
            if settled.started.task is None:
                self._decoded(settled.started.msg)
            else:
                self._feed.done(settled.started.msg)
        for started in given_back:
            self._feed.give_back(started.msg)
        return self._start(polled, answers) if polled else []

    def _decoded(self, msg: Any) -> TaskMessage | None:
        """The message's task; None for an error event, or a message that is not a task
        (rejected: never delivered again)."""
        read = _read(msg)
        if isinstance(read, MessageDecodeError):
            metrics.DECODE_ERRORS.labels(self._service.name).inc()
            log.error("skipping a message that is not a task: %s", read,
                      extra={"service": self._service.name})
            self._feed.reject(msg)
            return None
        if read is None and msg.error().code() != KafkaError._PARTITION_EOF:
            log.warning("consumer error: %s", msg.error())
        return read

    def _undeliverable(self, task: TaskMessage, deliveries: int) -> Outcome:
        """How a task ends whose message keeps coming back untaken: every worker it went to
        before died or hung before the api had its running report. This worker now runs
        it (its running report was taken), so it ends it, without calling the algorithm."""
        metrics.TASKS.labels(self._service.name, Status.FAILED.value).inc()
        log.error("the task's message was delivered %d times without a worker starting it; "
                  "ending the task failed", deliveries, extra=task_extra(task))
        return Outcome(Status.FAILED, message=f"its message was delivered {deliveries} times "
                       "without a worker starting the task (each one died or hung taking it)")

    # -- talking to the api ---------------------------------------------------------------

    def _send(self, held: list[Settled], starting: list[TaskMessage]) -> list[Answer] | None:
        """Report the held outcomes not reported yet, in one request with the `starting`
        tasks' running reports when there are two reports or more: the api's answers to
        the running reports (None: not asked; they are to be reported alone)."""
        unsent = [(s, s.started.task, s.outcome) for s in held
                  if s.started.task is not None and s.outcome is not None and not s.reported]
        reports = [(task, outcome) for _, task, outcome in unsent] + [(task, RUNNING) for task in starting]
        answers = self._reporter.together(reports) if len(reports) > 1 else None
        for i, (settled, task, outcome) in enumerate(unsent):
            answer = None if answers is None else answers[i]
            settled.taken = self._reporter.report_outcome(task, outcome, answer)
            settled.reported = True
        return None if answers is None else answers[len(unsent):]

    # -- waiting ------------------------------------------------------------------------

    def _poll_paused(self, timeout_s: float) -> None:
        self.liveness.beat()  # a long task or a report being retried is not a stall
        self._feed.keep_alive(timeout_s)

    def _idle(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        self._feed.hold()
        try:
            while time.monotonic() < deadline:
                self._poll_paused(min(0.2, max(deadline - time.monotonic(), 0.0)))
        finally:
            self._feed.release()


def _read(msg: Any) -> TaskMessage | MessageDecodeError | None:
    """The message's task, why it is not one, or None for a consumer's error event."""
    if msg.error() is not None:
        return None
    try:
        return decode(msg.value(), msg.headers())
    except MessageDecodeError as ex:
        return ex


def feed(config: Config, service: ServiceConfig) -> Feed:
    """The service's topic, read in its mode (`taskmill.kafka.mode` / `modes`)."""
    if service.shared:
        return ShareFeed(ShareConsumer(share_consumer_conf(config.kafka, service)),
                         AdminClient(common_conf(config.kafka)), service)
    return GroupFeed(Consumer(consumer_conf(config.kafka, service)), service)


def serve(service_name: str, algorithm: Algorithm, argv: list[str] | None = None) -> None:
    """Run a worker process for the named service until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog=f"taskmill-worker-{service_name}")
    parser.add_argument("--metrics-port", type=int, default=0,
                        help="port of /metrics and /healthz (0: none)")
    parser.add_argument("--metrics-addr", default="127.0.0.1")
    args = parser.parse_args(argv)
    setup_logging(f"worker-{service_name}")
    config = load_config()
    if service_name not in config.services:
        raise SystemExit(f"service {service_name!r} is not in the config's service list")
    if not config.worker_token:
        raise SystemExit("WORKER_TOKEN (or AUTH_TOKEN) is not set: the worker reports through "
                         "the api with it")
    service = config.service(service_name)
    worker = Worker(config, service, algorithm, ApiClient(config.api.url, config.worker_token),
                    feed(config, service), Sources(config.sources), Liveness(config.lifecycle.stall_s))

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: finishing the current task, then stopping",
                 signal.Signals(signum).name)
        worker.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.metrics_port:
        serve_health(args.metrics_port, args.metrics_addr, worker.liveness)
    worker.run()
