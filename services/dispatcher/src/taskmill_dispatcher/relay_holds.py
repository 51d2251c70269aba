"""Which services' outboxes this dispatcher relays.

Dispatchers share the services one at a time each: the one that holds a service's relay
(a hold on the service's document, `lifecycle.dispatch_claim_s` long) is the only one that
publishes its tasks, so no task needs a write to mark it taken before it is published. A
hold is renewed once a fifth of it has passed, in the round that uses it: a relay round
that starts with at least four fifths left settles its publications (within
`delivery_timeout_s`, seven tenths) while it still holds the service. Another dispatcher
asks again every ASK_AGAIN_S while the hold it was refused lasts (two commands, no change),
and takes the service over once it is let go or ends unrenewed: a dispatcher that stops
lets go of its services, which move within a second. A dispatcher that finds a service
held by one that ran on its own host (or in its own container) and runs no more, killed or
crashed, takes it over at once (a restarted pod, `make up` after a crash); other crashed
holders' services wait at most one hold for their next publication.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Protocol

from taskmill.health import process_name
from taskmill.schema import Clock
from taskmill.store.service_states import RelayHold
from taskmill_dispatcher import metrics

# A hold with less than this share of its length left is renewed before it is used.
RENEW_BELOW = 0.8
# How often a dispatcher refused a service asks again while the other's hold lasts.
ASK_AGAIN_S = 1.0


class HoldStore(Protocol):
    """Where the holds are kept (`ServiceStates`)."""

    def hold_relay(self, service: str, holder: str, now: datetime, until: datetime,
                   replacing: str | None = None) -> RelayHold: ...

    def let_go_relay(self, service: str, holder: str) -> None: ...


def gone(other: str, mine: str) -> bool:
    """Whether the holder named `other` (a `process_name`) was a dispatcher on the host of
    the one named `mine` that runs no more: its pid is ours (a container restarted: one pid namespace
    cannot hold both) or no process has it. Anything else, a name that does not parse
    included, is taken to be alive."""
    try:
        other_host, other_pid, _ = other.rsplit("-", 2)
        my_host, my_pid, _ = mine.rsplit("-", 2)
        pid = int(other_pid)
        own = int(my_pid)
    except ValueError:
        return False
    if other_host != my_host or other == mine:
        return False
    if pid == own:
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:  # it exists (another user's)
        pass
    return False


class RelayHolds:
    """This dispatcher's holds on services' relays, as last written or refused."""

    def __init__(self, holds: HoldStore, hold_s: float, clock: Clock,
                 holder: str | None = None) -> None:
        self._holds = holds
        self._length = timedelta(seconds=hold_s)
        self._clock = clock
        self.holder = holder or process_name()
        self._mine: dict[str, datetime] = {}  # service -> until when this one holds it
        self._theirs: dict[str, datetime] = {}  # service -> when to ask again

    def holds(self, service: str) -> bool:
        """Whether this dispatcher relays the service now: its hold is fresh, or it takes or
        renews it (one write), unless it was refused the service less than ASK_AGAIN_S ago
        and the other's hold has not ended since."""
        now = self._clock()
        mine = self._mine.get(service)
        if mine is not None and mine - now >= self._length * RENEW_BELOW:
            return True
        ask_at = self._theirs.get(service)
        if ask_at is not None and now < ask_at:
            return False
        hold = self._holds.hold_relay(service, self.holder, now, now + self._length)
        if hold.holder is not None and hold.holder != self.holder and gone(hold.holder, self.holder):
            hold = self._holds.hold_relay(service, self.holder, now, now + self._length,
                                          replacing=hold.holder)
        if hold.holder == self.holder and hold.until is not None:
            self._mine[service] = hold.until
            self._theirs.pop(service, None)
            metrics.RELAYING.labels(service).set(1)
            return True
        self._mine.pop(service, None)
        if hold.until is not None:
            self._theirs[service] = min(hold.until, now + timedelta(seconds=ASK_AGAIN_S))
        metrics.RELAYING.labels(service).set(0)
        return False

    def let_go(self) -> None:
        """Give up every service this dispatcher holds (on shutdown)."""
        for service in list(self._mine):
            self._holds.let_go_relay(service, self.holder)
            del self._mine[service]
            metrics.RELAYING.labels(service).set(0)
