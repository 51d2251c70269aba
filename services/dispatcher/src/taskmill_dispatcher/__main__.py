"""Run the dispatcher: `python -m taskmill_dispatcher [--metrics-port N]`."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from taskmill.config import Config, load_config
from taskmill.errors import DependencyUnavailable
from taskmill.health import Liveness, serve
from taskmill.kafka import common_conf
from taskmill.logs import setup_logging
from taskmill.schema import utcnow
from taskmill.store import TaskStore
from taskmill_dispatcher import metrics
from taskmill_dispatcher.capacity import Capacity
from taskmill_dispatcher.groups import GroupMembers
from taskmill_dispatcher.producers import Producers
from taskmill_dispatcher.recovery import Recovery
from taskmill_dispatcher.relay import Relay, delivery_timeout_s
from taskmill_dispatcher.relay_holds import RelayHolds
from taskmill_dispatcher.retention import Retention
from taskmill_dispatcher.stats import TaskStats
from taskmill_dispatcher.topics import ensure_topics
from taskmill_dispatcher.watch import ServiceWatch

log = logging.getLogger("taskmill_dispatcher")

# How soon to look again for room when a service has more due tasks than room (doubled
# after each look that found none, up to BACKLOGGED_MAX_S: the idle poll is for starts,
# this for room its workers make, which a shorter idle poll need not look for more often).
BACKLOGGED_POLL_S = 0.02
BACKLOGGED_MAX_S = 0.1


class Dispatcher:
    """The relay, recovery, retention and services' watch loop, with start-up chores
    retried until they succeed."""

    def __init__(self, config: Config, store: TaskStore, producer: Producers,
                 admin: AdminClient, members: GroupMembers, liveness: Liveness) -> None:
        self._config = config
        self._store = store
        self._producer = producer
        self._admin = admin
        capacity = Capacity(config, members, store)
        self._watch = ServiceWatch(config, store, capacity)
        self._holds = RelayHolds(store.services, config.lifecycle.dispatch_claim_s, utcnow)
        self.stopping = threading.Event()
        self._relay = Relay(config, store, producer, capacity, self._watch, self._holds,
                            stopping=self.stopping)
        self._recovery = Recovery(config, store)
        self._retention = Retention(config, store)
        self._stats = TaskStats(config, store, capacity.run_times)
        self.liveness = liveness

    def run(self) -> None:
        """Relay until stopped; back off while a dependency is down."""
        indexes_ok = topics_ok = False
        metrics.UP.set(1)
        idle_s = self._config.lifecycle.dispatch_poll_s
        backlogged_s = BACKLOGGED_POLL_S
        while not self.stopping.is_set():
            self.liveness.beat()
            try:
                indexes_ok = indexes_ok or self._ensure_indexes()
                topics_ok = topics_ok or self._ensure_topics()
                moved = (self._relay.run_once() + self._recovery.run_due()
                         + self._retention.run_due())
                self._watch.run_due()
                self._stats.run_due()
            except DependencyUnavailable as ex:
                metrics.LOOP_ERRORS.labels("mongodb").inc()
                log.warning("relay round failed: %s", ex)
                self.stopping.wait(1.0)
                continue
            except Exception:  # a failure nobody foresaw must not stop the relay: next round
                metrics.LOOP_ERRORS.labels("unexpected").inc()
                log.exception("relay round failed unexpectedly; going on")
                self.stopping.wait(1.0)
                continue
            if moved:
                backlogged_s = BACKLOGGED_POLL_S
            elif self._relay.backlogged:
                # A service with more due than room gets room as its workers take tasks:
                # look again soon, then less and less often while none is made.
                self.stopping.wait(backlogged_s)
                backlogged_s = min(backlogged_s * 2, BACKLOGGED_MAX_S)
            else:
                self.stopping.wait(idle_s)
        self._producer.flush(self._config.lifecycle.shutdown_grace_s)
        self._let_go()
        metrics.UP.set(0)
        log.info("dispatcher stopped")

    def _let_go(self) -> None:
        """Let the other dispatchers take this one's services over at once."""
        try:
            self._holds.let_go()
        except DependencyUnavailable as ex:  # they take over when the holds end
            log.warning("services' relays not let go (%s)", ex)

    def _ensure_indexes(self) -> bool:
        self._store.ensure_indexes()
        return True

    def _ensure_topics(self) -> bool:
        try:
            ensure_topics(self._admin, self._config)
            return True
        except KafkaException as ex:
            metrics.LOOP_ERRORS.labels("kafka").inc()
            log.warning("topics not ensured yet (Kafka: %s); publishing anyway", ex)
            return False


def main(argv: list[str] | None = None) -> None:
    """Start the dispatcher until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="taskmill-dispatcher")
    parser.add_argument("--metrics-port", type=int, default=9101,
                        help="port of /metrics and /healthz (0: none)")
    parser.add_argument("--metrics-addr", default="127.0.0.1")
    args = parser.parse_args(argv)
    setup_logging("dispatcher")
    config = load_config()
    store = TaskStore.open(config, appname="taskmill-dispatcher")
    producer = Producers(config, delivery_timeout_s(config))
    admin = AdminClient(common_conf(config.kafka))
    members = GroupMembers(common_conf(config.kafka))
    dispatcher = Dispatcher(config, store, producer, admin, members, Liveness(config.lifecycle.stall_s))

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: stopping after the current round", signal.Signals(signum).name)
        dispatcher.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.metrics_port:
        serve(args.metrics_port, args.metrics_addr, dispatcher.liveness)
    log.info("dispatcher started for services %s", ", ".join(config.services))
    try:
        dispatcher.run()
    finally:
        members.close()
        store.close()  # writes the count moves still gathered (TaskCounts)


if __name__ == "__main__":
    main()
