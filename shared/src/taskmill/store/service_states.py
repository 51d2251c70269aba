"""What the system knows of each service beyond its tasks, kept where the api can read it.

One small document per service in `<tasks>_services`. The dispatcher writes what it sees
every few seconds (`save`): that its loop is alive (`seen_at`), the service's workers as
the consumer group's membership (`workers`, and since when there has been none), whether
the broker confirms the service's messages (since when it has not), and the service's
circuit breaker. The store appends the time of every failed run a worker reports
(`run_failed`, the last `KEPT_FAILURES`), which is what the breaker counts. The api reads
them to say why a started task is not running yet (`pending`).

The document also says which dispatcher relays the service's outbox (`relay`: its holder
and until when): one at a time, so that two dispatchers never publish the same task and
none has to mark each task it is about to publish as its own (`hold_relay`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pymongo import UpdateOne
from pymongo.collection import Collection
from pymongo.errors import PyMongoError

from taskmill.config import MAX_BREAKER_FAILURES
from taskmill.store.connection import Created, each_by_id, unavailable_as_error

log = logging.getLogger(__name__)

# Failed runs remembered per service: as many as a breaker may wait for.
KEPT_FAILURES = MAX_BREAKER_FAILURES


class BreakerState(StrEnum):
    CLOSED = "closed"  # the service's tasks are published
    OPEN = "open"  # none is published until `until`
    HALF_OPEN = "half_open"  # one is let through (the trial); its run decides


@dataclass(frozen=True)
class Breaker:
    """A service's circuit breaker as stored."""

    state: BreakerState = BreakerState.CLOSED
    failures: int = 0  # failed runs in a row when it opened
    until: datetime | None = None  # open: when a trial is let through
    cooldown_s: float = 0.0  # the pause it opened for
    since: datetime | None = None  # half open: when the trial began
    trial: str | None = None  # half open: the task let through, once published

    @property
    def paused(self) -> bool:
        return self.state != BreakerState.CLOSED

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any] | None) -> Breaker:
        if not doc:
            return cls()
        return cls(**{**doc, "state": BreakerState(doc.get("state", BreakerState.CLOSED))})


@dataclass(frozen=True)
class ServiceState:
    """One service as the dispatcher last saw it, and its recent failed runs."""

    service: str
    seen_at: datetime | None = None  # a dispatcher's last look (None: never)
    workers: int | None = None  # consumer group members (None: not known yet)
    no_worker_since: datetime | None = None
    publish_failing_since: datetime | None = None
    publish_error: str | None = None
    breaker: Breaker = field(default_factory=Breaker)
    failures: tuple[datetime, ...] = ()  # times of the last failed runs, oldest first

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> ServiceState:
        return cls(service=doc["_id"], seen_at=doc.get("seen_at"), workers=doc.get("workers"),
                   no_worker_since=doc.get("no_worker_since"),
                   publish_failing_since=doc.get("publish_failing_since"),
                   publish_error=doc.get("publish_error"),
                   breaker=Breaker.from_doc(doc.get("breaker")),
                   failures=tuple(doc.get("failures") or ()))

    def seen_fields(self) -> dict[str, Any]:
        """The fields the dispatcher writes (everything but the failed runs)."""
        return {"seen_at": self.seen_at, "workers": self.workers,
                "no_worker_since": self.no_worker_since,
                "publish_failing_since": self.publish_failing_since,
                "publish_error": self.publish_error,
                "breaker": {**asdict(self.breaker), "state": self.breaker.state.value}}


@dataclass(frozen=True)
class RelayHold:
    """Who relays a service's outbox, until when (holder None: nobody)."""

    holder: str | None
    until: datetime | None


class ServiceStates:
    """The services collection beside the tasks collection (`<tasks>_services`)."""

    def __init__(self, tasks: Collection[Any]) -> None:
        self._states: Collection[Any] = tasks.database[f"{tasks.name}_services"]
        self._created = Created(self._states)  # updated only, never upserted

    def get_many(self, services: Iterable[str]) -> dict[str, ServiceState]:
        """The state of each of these services (a service never written: its defaults)."""
        names = sorted(set(services))
        with unavailable_as_error():
            found = {doc["_id"]: ServiceState.from_doc(doc)
                     for doc in self._states.find({"_id": {"$in": names}})}
        return {name: found.get(name) or ServiceState(name) for name in names}

    def save(self, states: Iterable[ServiceState]) -> None:
        """Write what the dispatcher saw of these services (one command, after inserting
        the document of a service this process has not written before)."""
        writes = {s.service: UpdateOne({"_id": s.service}, {"$set": s.seen_fields()}) for s in states}
        if writes:
            with unavailable_as_error():
                self._created.ensure(writes)
                each_by_id(self._states, writes)

    def run_failed(self, service: str, at: datetime) -> None:
        """Remember that a run of the service failed at `at`. Never raises: the failure is
        recorded in the task already, and a breaker that misses one opens one run later."""
        try:
            self._created.ensure([service])
            self._states.update_one(
                {"_id": service}, {"$push": {"failures": {"$each": [at], "$slice": -KEPT_FAILURES}}})
        except PyMongoError as ex:
            log.warning("failed run of %s not remembered for its breaker (%s)", service,
                        type(ex).__name__)

    def hold_relay(self, service: str, holder: str, now: datetime, until: datetime,
                   replacing: str | None = None) -> RelayHold:
        """Take or renew the relay of the service's outbox for `holder` until `until`, unless
        another holder's hold lasts past `now` (or, with `replacing`, is held by another
        than that one, known to be gone): who holds it after this (one conditional update;
        a refused one reads the other's hold)."""
        free = [{"relay.holder": holder}, {"relay": None}, {"relay.until": {"$lt": now}}]
        if replacing is not None:
            free.append({"relay.holder": replacing})
        with unavailable_as_error():
            self._created.ensure([service])
            taken = self._states.update_one({"_id": service, "$or": free},
                                            {"$set": {"relay": {"holder": holder, "until": until}}})
            if taken.matched_count:
                return RelayHold(holder, until)
            doc = self._states.find_one({"_id": service}, {"relay": 1}) or {}
        relay = doc.get("relay") or {}
        return RelayHold(relay.get("holder"), relay.get("until"))

    def let_go_relay(self, service: str, holder: str) -> None:
        """Give up the holder's relay of the service (another dispatcher may take it now)."""
        with unavailable_as_error():
            self._states.update_one({"_id": service, "relay.holder": holder}, {"$set": {"relay": None}})
