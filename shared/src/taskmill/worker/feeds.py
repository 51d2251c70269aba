"""Where a worker's tasks come from: its service's Kafka topic, read in the service's mode.

`GroupFeed`: a member of a consumer group. Each partition is read by one worker; a
message's offset is stored only after its outcome is reported (at least once). During a
long run the worker's partitions are paused and the consumer keeps polling, so it stays
in its group however long the task takes.

`ShareFeed`: a member of a share group (Kafka >= 4.2, KIP-932). Every worker takes records
from every partition, one at a time, so a task never waits behind another worker's long
run and a service may run more workers than its topic has partitions. A record is
acquired under a lock (the group's `share.record.lock.duration.ms`, 30 s by default) and
accepted as soon as the api took the worker's `running` report: from then on the task's
lease in the store (renewed by heartbeats, recovered by the dispatcher) covers the run,
however long, and the record no longer needs its lock. Before that point a record the
worker cannot take is released (shutdown), or rejected (not a task), or, past a few
deliveries, ended by the worker (see `Worker`). A share consumer cannot pause: the worker
does not poll while it runs a task.

Both answer the same questions (`Feed`), so the worker's loop is one.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from confluent_kafka import AcknowledgeType, IllegalStateException, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from taskmill.config import ServiceConfig
from taskmill.worker import metrics

log = logging.getLogger("taskmill.worker")


class Feed(Protocol):
    """A worker's source of task messages."""

    def start(self) -> None:
        """Join the service's group (raises KafkaException while Kafka cannot be reached)."""

    def next(self, timeout_s: float) -> Any:
        """The next message, or None within timeout_s."""

    def taken(self, msg: Any) -> None:
        """The api took the worker's `running` report for this message's task."""

    def done(self, msg: Any) -> None:
        """The message is dealt with: its outcome reported, or it was skipped."""

    def reject(self, msg: Any) -> None:
        """The message is not a task: never to be delivered again."""

    def give_back(self, msg: Any) -> None:
        """The worker stops before the message is dealt with: deliver it again."""

    def deliveries(self, msg: Any) -> int:
        """How many times the message has been delivered, this time included."""

    def hold(self) -> None:
        """Take no new message until `release` (a run or a retried report in progress)."""

    def release(self) -> None:
        """Take messages again."""

    def keep_alive(self, timeout_s: float) -> None:
        """Spend about timeout_s while holding, keeping the group membership."""

    def refresh_lag(self) -> None:
        """Update the worker's lag gauge, where the mode has one."""

    def close(self) -> None:
        """Leave the group."""


class GroupFeed:
    """A consumer group member (`taskmill.kafka.consumer_conf`)."""

    def __init__(self, consumer: Any, service: ServiceConfig) -> None:
        self._consumer = consumer
        self._service = service
        self._busy = False

    def start(self) -> None:
        self._consumer.subscribe([self._service.topic_name], on_assign=self._on_assign)

    def next(self, timeout_s: float) -> Any:
        return self._consumer.poll(timeout_s)

    def taken(self, msg: Any) -> None:
        return None  # the offset waits for the outcome

    def done(self, msg: Any) -> None:
        try:
            self._consumer.store_offsets(message=msg)
        except KafkaException as ex:  # partition revoked meanwhile: the next owner decides
            log.info("offset not stored: %s", ex, extra={"service": self._service.name})

    def reject(self, msg: Any) -> None:
        self.done(msg)

    def give_back(self, msg: Any) -> None:
        return None  # its offset is not stored: the partition's next reader gets it again

    def deliveries(self, msg: Any) -> int:
        return 1  # a consumer group does not count them

    def hold(self) -> None:
        self._busy = True
        self._consumer.pause(self._consumer.assignment())

    def release(self) -> None:
        self._busy = False
        self._consumer.resume(self._consumer.assignment())

    def keep_alive(self, timeout_s: float) -> None:
        msg = self._consumer.poll(timeout_s)
        if msg is not None and msg.error() is None:
            # Fetched before the pause took effect: rewind so it is delivered again.
            self._consumer.seek(TopicPartition(msg.topic(), msg.partition(), msg.offset()))

    def refresh_lag(self) -> None:
        lag = 0
        try:
            for tp in self._consumer.position(self._consumer.assignment()):
                marks = self._consumer.get_watermark_offsets(tp, cached=True)
                if marks is None or marks[1] < 0:
                    continue
                low, high = marks
                lag += max(high - max(tp.offset, low), 0)
        except KafkaException as ex:
            log.debug("lag not measured: %s", ex)
            return
        metrics.LAG.labels(self._service.name).set(lag)

    def close(self) -> None:
        self._consumer.close()

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        # librdkafka keeps a partition's pause across its revocation and re-assignment: a
        # partition that moved away mid-task and came back when the worker was idle again
        # would stay paused for good. So every assignment says again what the worker
        # wants: paused in the middle of a task, flowing otherwise. Pausing needs the
        # partitions assigned, hence the assign here rather than after the callback.
        consumer.assign(partitions)
        if self._busy:
            consumer.pause(partitions)
        else:
            consumer.resume(partitions)


# Share group settings the worker makes sure of before joining (group configs, KIP-932):
# a new group starts at the topic's beginning, so tasks published before the first worker
# joined are not skipped.
SHARE_GROUP_CONFIG = {"share.auto.offset.reset": "earliest"}


class ShareFeed:
    """A share group member (`taskmill.kafka.share_consumer_conf`)."""

    def __init__(self, consumer: Any, admin: AdminClient, service: ServiceConfig,
                 timeout_s: float = 10.0) -> None:
        self._consumer = consumer
        self._admin = admin
        self._service = service
        self._timeout_s = timeout_s
        self._acquired: Any = None  # the record polled and not yet acknowledged

    def start(self) -> None:
        resource = ConfigResource(ResourceType.GROUP, self._service.consumer_id, incremental_configs=[
            ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
            for name, value in SHARE_GROUP_CONFIG.items()])
        for future in self._admin.incremental_alter_configs([resource],
                                                            request_timeout=self._timeout_s).values():
            future.result(timeout=self._timeout_s)
        self._consumer.subscribe([self._service.topic_name])

    def next(self, timeout_s: float) -> Any:
        try:
            batch = self._consumer.poll(timeout_s)
        except KafkaException as ex:
            if ex.args[0].code() == KafkaError._MAX_POLL_EXCEEDED:
                # A run longer than the poll interval: the member left the group and rejoins.
                log.info("rejoining the share group after a long run",
                         extra={"service": self._service.name})
            else:  # the broker away, and the like: polled again after a pause
                log.warning("share group poll failed: %s", ex, extra={"service": self._service.name})
                time.sleep(min(timeout_s, 1.0))
            return None
        messages = list(batch)
        if not messages:
            return None
        # max.poll.records is 1; should the broker hand over more, the rest go back.
        for extra in messages[1:]:
            if extra.error() is None:
                self._consumer.acknowledge(extra, AcknowledgeType.RELEASE)
        msg = messages[0]
        if msg.error() is None:
            self._acquired = msg
        return msg

    def taken(self, msg: Any) -> None:
        self._acknowledge(msg, AcknowledgeType.ACCEPT)

    def done(self, msg: Any) -> None:
        self._acknowledge(msg, AcknowledgeType.ACCEPT)

    def reject(self, msg: Any) -> None:
        self._acknowledge(msg, AcknowledgeType.REJECT)

    def give_back(self, msg: Any) -> None:
        self._acknowledge(msg, AcknowledgeType.RELEASE)

    def deliveries(self, msg: Any) -> int:
        count = msg.delivery_count()
        return 1 if count is None else int(count)

    def hold(self) -> None:
        return None  # nothing to pause: the worker simply does not poll

    def release(self) -> None:
        return None

    def keep_alive(self, timeout_s: float) -> None:
        time.sleep(timeout_s)  # the group's heartbeats are librdkafka's, in the background

    def refresh_lag(self) -> None:
        return None  # a share group has no per-member lag; the dispatcher's backlog gauges say it

    def close(self) -> None:
        if self._acquired is not None:
            self.give_back(self._acquired)
        self._consumer.close()  # commits what is acknowledged and leaves the group

    def _acknowledge(self, msg: Any, kind: AcknowledgeType) -> None:
        """Acknowledge the acquired record (once) and send it to the broker now."""
        if self._acquired is not msg:
            return  # already acknowledged
        self._acquired = None
        try:
            self._consumer.acknowledge(msg, kind)
            answers = self._consumer.commit_sync(self._timeout_s)
            errors = [error for error in answers.values() if error is not None]
        except (KafkaException, IllegalStateException) as ex:
            errors = [ex]
        if errors:  # its lock lapsed meanwhile, or the broker is away: delivered again
            log.warning("record not acknowledged (%s): %s", kind.name, errors[0],
                        extra={"service": self._service.name})
