import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from taskmill.codec import TaskMessage, decode

pytestmark = pytest.mark.integration


@pytest.fixture
def topic(kafka_servers: str, unique: str):
    admin = AdminClient({"bootstrap.servers": kafka_servers})
    name = f"test_codec_{unique}"
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(10)
    yield name
    admin.delete_topics([name])[name].result(10)


def test_message_comes_back_byte_identical_from_kafka(kafka_servers: str, topic: str, unique: str):
    """A message produced with the codec is consumed back with the same bytes and headers."""
    message = TaskMessage(f"ts_aaa_{'ab' * 16}", "aaa", "mongo", {"城市": "北京", "n": [1, 2.5]},
                          attempt=2, trace_id="trace-1")
    producer = Producer({"bootstrap.servers": kafka_servers, "acks": "all",
                         "enable.idempotence": True})
    confirmed = []
    producer.produce(topic, value=message.encode(), key=message.key(), headers=message.headers(),
                     on_delivery=lambda err, msg: confirmed.append(err))
    assert producer.flush(15) == 0
    assert confirmed == [None]

    consumer = Consumer({"bootstrap.servers": kafka_servers, "group.id": f"g_{unique}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    try:
        received = None
        for _ in range(60):
            received = consumer.poll(0.5)
            if received is not None and received.error() is None:
                break
        assert received is not None and received.error() is None
        assert received.value() == message.encode()
        assert received.key() == message.key()
        assert decode(received.value(), received.headers()) == message
    finally:
        consumer.close()
