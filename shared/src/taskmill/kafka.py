"""Kafka client settings from the config: the one place they are built."""

from __future__ import annotations

from typing import Any

from taskmill.config import KafkaConfig, ServiceConfig


def common_conf(kafka: KafkaConfig) -> dict[str, Any]:
    """Return the settings every client shares: servers and security."""
    conf: dict[str, Any] = {"bootstrap.servers": ",".join(kafka.bootstrap_servers)}
    if kafka.sasl_username:
        conf.update({"security.protocol": "SASL_SSL", "sasl.mechanisms": "PLAIN",
                     "sasl.username": kafka.sasl_username, "sasl.password": kafka.sasl_password})
    return conf


def producer_conf(kafka: KafkaConfig, delivery_timeout_s: float = 30.0) -> dict[str, Any]:
    """Return a producer that the broker confirms durably, without duplicates on retry.

    A message not confirmed within delivery_timeout_s is reported as failed.
    """
    return common_conf(kafka) | {
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 2,
        "message.timeout.ms": int(delivery_timeout_s * 1000),
    }


def share_producer_conf(kafka: KafkaConfig, delivery_timeout_s: float = 30.0) -> dict[str, Any]:
    """Return the producer of share-group services' topics: every message a batch of its own.

    A share group hands a worker whole record batches, so tasks produced together would
    go to one worker while the others idle; one task per batch spreads them.
    """
    return producer_conf(kafka, delivery_timeout_s) | {"linger.ms": 0, "batch.num.messages": 1}


def consumer_conf(kafka: KafkaConfig, service: ServiceConfig) -> dict[str, Any]:
    """Return an at-least-once consumer in the service's group: offsets stored by hand."""
    return common_conf(kafka) | {
        "group.id": service.consumer_id,
        "enable.auto.commit": True,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        # Long tasks run while the consumer keeps polling with its partitions paused.
        "max.poll.interval.ms": 300000,
        "session.timeout.ms": kafka.session_timeout_ms,
    }


# librdkafka's largest max.poll.interval.ms (24 h).
MAX_POLL_INTERVAL_MS = 86_400_000


def share_consumer_conf(kafka: KafkaConfig, service: ServiceConfig) -> dict[str, Any]:
    """Return a member of the service's share group that acknowledges each record itself.

    A share consumer cannot pause: every poll acquires records. So a worker does not poll
    while it runs a task, and the poll interval is as long as librdkafka allows; the
    group's heartbeats go on in the background meanwhile.
    """
    return common_conf(kafka) | {
        "group.id": service.consumer_id,
        "share.acknowledgement.mode": "explicit",
        "max.poll.records": 1,
        "max.poll.interval.ms": MAX_POLL_INTERVAL_MS,
    }
