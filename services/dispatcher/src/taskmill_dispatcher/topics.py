"""Create the services' topics when they are missing."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from taskmill.config import Config, ServiceConfig

log = logging.getLogger(__name__)


def partitions(config: Config, service: ServiceConfig) -> int:
    """How many partitions the service's topic is made with.

    A consumer group's: `taskmill.kafka.partitions`, which cap how many of its workers
    consume in parallel. A share group's: one. Kafka's share-group assignor gives each
    member about one partition of the topic (its member id's hash), and a member fetches
    only from its own: on a topic of several partitions a task can wait on a partition
    whose workers are busy while workers of another idle. On one partition every worker
    takes from the same queue (and one partition carries thousands of tasks a second).
    """
    return 1 if service.shared else config.kafka.partitions


def ensure_topics(admin: AdminClient, config: Config, timeout_s: float = 10.0) -> None:
    """Create every configured service's topic that does not exist yet (idempotent), and
    warn about a share-group service's topic of more than one partition.
    Replication follows the broker's default."""
    existing = admin.list_topics(timeout=timeout_s).topics
    for service in config.services.values():
        found = existing.get(service.topic_name)
        if found is not None and service.shared and len(found.partitions) > 1:
            log.warning("topic %s of share-group service %s has %d partitions: each worker "
                        "reads about one of them, so a task may wait while other workers "
                        "idle; a share-group service's topic should have one partition",
                        service.topic_name, service.name, len(found.partitions))
    by_topic = {s.topic_name: s for s in config.services.values()}  # a topic is made once
    missing = [NewTopic(topic, num_partitions=partitions(config, by_topic[topic]), replication_factor=-1)
               for topic in sorted(set(by_topic) - set(existing))]
    if not missing:
        return
    for topic, future in admin.create_topics(missing, request_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
            log.info("created topic %s", topic)
        except KafkaException as ex:
            if ex.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
