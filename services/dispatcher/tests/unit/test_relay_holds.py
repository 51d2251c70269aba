"""A dispatcher's holds on services' relays: written only when taken or worth renewing,
asked for about once a second while another dispatcher's hold lasts, let go on shutdown,
taken over at once from a dispatcher of the same host that runs no more. The holds'
store is an in-memory stand-in; on the real store they are in shared/tests/integration."""

import os
from datetime import timedelta

from taskmill.store.service_states import RelayHold
from taskmill_dispatcher.relay_holds import RelayHolds, gone
from tests.helpers import Clock

START = Clock().now


class Store:
    """Holds as ServiceStates keeps them, with the writes and reads counted."""

    def __init__(self) -> None:
        self.relay: dict[str, RelayHold] = {}
        self.asked = 0

    def hold_relay(self, service, holder, now, until, replacing=None):
        self.asked += 1
        hold = self.relay.get(service)
        if hold is None or hold.holder in (None, holder, replacing) or hold.until < now:
            self.relay[service] = RelayHold(holder, until)
        return self.relay[service]

    def let_go_relay(self, service, holder):
        if self.relay[service].holder == holder:
            self.relay[service] = RelayHold(None, None)


def test_a_hold_is_written_when_taken_and_renewed_once_a_fifth_of_it_has_passed():
    store, clock = Store(), Clock()
    holds = RelayHolds(store, 10, clock, holder="one")
    assert holds.holds("aaa") and store.asked == 1
    clock.advance(1.9)
    assert holds.holds("aaa") and store.asked == 1  # still fresh: no write
    clock.advance(0.2)
    assert holds.holds("aaa") and store.asked == 2
    assert store.relay["aaa"] == RelayHold("one", START + timedelta(seconds=12.1))


def test_another_dispatchers_hold_is_respected_until_it_ends_then_taken_over():
    store, clock = Store(), Clock()
    one, two = RelayHolds(store, 10, clock, holder="one"), RelayHolds(store, 10, clock, holder="two")
    assert one.holds("aaa") and not two.holds("aaa")
    asked = store.asked
    clock.advance(0.9)
    assert not two.holds("aaa") and store.asked == asked  # not asked again within a second
    for _ in range(9):
        clock.advance(1)
        assert not two.holds("aaa")
    assert store.asked == asked + 9
    clock.advance(0.2)  # "one" stopped renewing (it died): its hold ended
    assert two.holds("aaa") and store.relay["aaa"].holder == "two"
    assert not one.holds("aaa")  # it comes back: the service is the other's now


def test_a_dispatcher_that_lets_go_hands_its_services_over_at_once():
    store, clock = Store(), Clock()
    one, two = RelayHolds(store, 10, clock, holder="one"), RelayHolds(store, 10, clock, holder="two")
    assert one.holds("aaa") and one.holds("bbb") and not two.holds("aaa")
    one.let_go()
    assert store.relay["aaa"] == store.relay["bbb"] == RelayHold(None, None)
    clock.advance(1)
    assert two.holds("aaa") and two.holds("bbb")


NO_SUCH_PID = 99_999_999  # above any pid_max


def test_a_holder_is_gone_only_when_it_ran_here_and_its_process_does_not():
    me = f"pod-7-{os.getpid()}-aaaa"  # a host name with dashes
    assert gone(f"pod-7-{NO_SUCH_PID}-bbbb", me)
    assert gone(f"pod-7-{os.getpid()}-bbbb", me)  # our pid: an earlier run of this container
    assert not gone(f"pod-7-{os.getppid()}-bbbb", me)  # running
    assert not gone(f"pod-8-{NO_SUCH_PID}-bbbb", me)  # another host: cannot tell
    assert not gone(me, me)
    assert not gone("not a holder name", me) and not gone("pod-7-x-bbbb", me)


def test_a_service_held_by_a_dispatcher_gone_from_this_host_is_taken_over_at_once():
    store, clock = Store(), Clock()
    store.relay["aaa"] = RelayHold(f"pod-7-{NO_SUCH_PID}-dead", START + timedelta(seconds=30))
    store.relay["bbb"] = RelayHold(f"pod-8-{NO_SUCH_PID}-far", START + timedelta(seconds=30))
    holds = RelayHolds(store, 10, clock, holder=f"pod-7-{os.getpid()}-mine")
    assert holds.holds("aaa") and store.relay["aaa"].holder == holds.holder
    assert not holds.holds("bbb")  # another host's: waited for
