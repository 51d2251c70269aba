"""The relay's producer: one for consumer-group services' topics, one for share groups'.

A share group hands its members whole record batches, so tasks produced together would
all go to one worker while the others idle. The topics of share-group services are
written by a producer that makes every message a batch of its own
(`taskmill.kafka.share_producer_conf`); the others keep batching.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Producer

from taskmill.config import Config
from taskmill.kafka import producer_conf, share_producer_conf


class Producers:
    """Routes each message to its topic's producer; polls and flushes both."""

    def __init__(self, config: Config, delivery_timeout_s: float,
                 make: Callable[[dict[str, Any]], Any] = Producer) -> None:
        self._shared_topics = {s.topic_name for s in config.services.values() if s.shared}
        self._batching = make(producer_conf(config.kafka, delivery_timeout_s))
        self._single = (make(share_producer_conf(config.kafka, delivery_timeout_s))
                        if self._shared_topics else None)

    def produce(self, topic: str, value: bytes, key: bytes, headers: Any,
                on_delivery: Callable[[Any, Any], None]) -> None:
        producer = self._single if topic in self._shared_topics else self._batching
        producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)

    def poll(self, timeout: float) -> int:
        return sum(p.poll(timeout) for p in self._all())

    def flush(self, timeout: float) -> int:
        """Wait for the answers of every message, up to timeout in all (not for each
        producer); how many are still unanswered."""
        deadline = time.monotonic() + timeout
        return sum(p.flush(max(deadline - time.monotonic(), 0.0)) for p in self._all())

    def _all(self) -> list[Any]:
        return [p for p in (self._batching, self._single) if p is not None]
