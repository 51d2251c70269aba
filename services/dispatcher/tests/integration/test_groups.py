"""Consumer-group sizes from the real Kafka, asked by the helper process; a helper that
dies (as librdkafka's admin client can make it) is replaced at the next question."""

import os
import signal
import uuid

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

from taskmill_dispatcher.groups import GroupMembers

pytestmark = pytest.mark.integration


def test_members_are_counted_and_a_dead_helper_is_replaced(kafka_servers):
    group, topic = f"g-{uuid.uuid4().hex}", f"t-{uuid.uuid4().hex}"
    admin = AdminClient({"bootstrap.servers": kafka_servers})
    admin.create_topics([NewTopic(topic, num_partitions=1)])[topic].result(timeout=30)
    consumer = Consumer({"bootstrap.servers": kafka_servers, "group.id": group,
                         "session.timeout.ms": 6000})
    members = GroupMembers({"bootstrap.servers": kafka_servers})
    try:
        consumer.subscribe([topic])
        for _ in range(100):  # joining takes a moment
            if members([group]).get(group, 0) >= 1:
                break
            consumer.poll(0.2)
        assert members([group, f"none-{uuid.uuid4().hex}"])[group] == 1
        os.kill(members.pid, signal.SIGKILL)  # as an abort in librdkafka would
        with pytest.raises(RuntimeError, match="not described"):
            members([group])
        assert members([group])[group] == 1  # a new helper
    finally:
        consumer.close()
        members.close()
