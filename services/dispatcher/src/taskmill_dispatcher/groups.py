"""How many members each consumer group has, asked of Kafka by a helper process.

librdkafka's admin client can abort the whole process that runs it when a DescribeGroups
request times out while the broker is away (`rd_kafka_enq_once_del_source_return:
Assertion eonce->refcnt > 0 failed`, librdkafka#4605, still open; seen here with Kafka
stopped under the dispatcher). So the describe runs in a child process of its own: if it
dies, that answer is missing (the caller keeps what it knew) and the next question starts
a new child. The relay never shares a process with it.
"""

from __future__ import annotations

import logging
import multiprocessing
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger(__name__)


class GroupMembers:
    """`members(groups)`: each group's member count, from a helper process."""

    def __init__(self, kafka_conf: dict[str, Any], timeout_s: float = 2.0) -> None:
        self._conf = kafka_conf
        self._timeout_s = timeout_s
        self._context = multiprocessing.get_context("spawn")
        self._child: Any = None
        self._conn: Connection | None = None

    def __call__(self, groups: list[str]) -> dict[str, int]:
        """The member count of each group Kafka described (a group it did not: left out).
        Raises RuntimeError when the helper gave no answer in time (or died)."""
        conn = self._connection()
        try:
            conn.send(groups)
            # The helper waits up to timeout_s per request and per future; start-up aside.
            if not conn.poll(self._timeout_s * 3 + 5):
                raise RuntimeError("no answer from the consumer-group helper")
            answer: dict[str, int] = conn.recv()
            return answer
        except (OSError, EOFError, RuntimeError) as ex:
            self.close()  # a dead or stuck helper: the next question starts another
            raise RuntimeError(f"consumer groups not described: {ex}") from ex

    @property
    def pid(self) -> int | None:
        """The helper process's pid (None: none runs now)."""
        return None if self._child is None else int(self._child.pid)

    def close(self) -> None:
        """Stop the helper process."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._child is not None:
            self._child.kill()
            self._child.join(5)
            if self._child.exitcode not in (None, 0, -9):
                log.warning("the consumer-group helper had died (exit %s)", self._child.exitcode)
            self._child = None

    def _connection(self) -> Connection:
        if self._child is not None and not self._child.is_alive():
            self.close()
        if self._conn is None:
            parent, child = self._context.Pipe()
            self._child = self._context.Process(target=_serve, args=(child, self._conf, self._timeout_s),
                                                name="taskmill-groups", daemon=True)
            self._child.start()
            child.close()
            self._conn = parent
        return self._conn


def _serve(conn: Connection, conf: dict[str, Any], timeout_s: float) -> None:
    """The helper: describe the groups it is asked about, until its pipe closes."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(conf)
    while True:
        try:
            groups = conn.recv()
        except (EOFError, OSError):
            return
        counts: dict[str, int] = {}
        try:
            futures = admin.describe_consumer_groups(groups, request_timeout=timeout_s)
            for group, future in futures.items():
                try:
                    counts[group] = len(future.result(timeout=timeout_s).members)
                except Exception:  # this group not described: left out
                    continue
        except Exception:  # Kafka down or the request refused: nothing described
            counts = {}
        conn.send(counts)
