"""Create the services' topics when they are missing."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from taskmill.config import Config

log = logging.getLogger(__name__)


def ensure_topics(admin: AdminClient, config: Config, timeout_s: float = 10.0) -> None:
    """Create every configured service's topic that does not exist yet (idempotent).

    Partitions come from `taskmill.kafka.partitions`: they cap how many workers of a
    service consume in parallel. Replication follows the broker's default.
    """
    wanted = {s.topic_name for s in config.services.values()}
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [NewTopic(t, num_partitions=config.kafka.partitions, replication_factor=-1)
               for t in sorted(wanted - existing)]
    if not missing:
        return
    for topic, future in admin.create_topics(missing, request_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
            log.info("created topic %s with %d partitions", topic, config.kafka.partitions)
        except KafkaException as ex:
            if ex.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
