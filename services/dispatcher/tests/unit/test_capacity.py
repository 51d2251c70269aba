"""Capacity: how many published tasks a service may have, from its workers and run times.
Kafka's admin client and the store are stand-ins: this is the arithmetic and the fallbacks."""

from datetime import UTC, datetime
from types import SimpleNamespace

from taskmill.config import load_config
from taskmill.store import RunTimes
from taskmill_dispatcher.capacity import Capacity
from tests.helpers import write_config


class Admin:
    """Kafka's answer: each group's member count (a group left out was not described)."""

    def __init__(self, members):
        self.members, self.down = members, False

    def __call__(self, groups):
        if self.down:
            raise RuntimeError("Kafka is down")
        return {group: n for group, n in self.members.items() if group in groups}


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def capacity(tmp_path, members, run_s, kafka=None, running=None, **lifecycle):
    config = load_config(write_config(tmp_path / "config.yaml",
                                      extra={"lifecycle": lifecycle, "kafka": kafka or {}}), {})
    counts = SimpleNamespace(all=lambda: {(s, "running"): n for s, n in (running or {}).items()})
    store = SimpleNamespace(counts=counts, run_times=lambda service: None if service not in run_s
                            else RunTimes(run_s[service], run_s[service], datetime(2026, 1, 1, tzinfo=UTC)))
    admin, clock = Admin(members), Clock()
    return Capacity(config, admin, store, clock=clock, refresh_s=5), admin, clock


def test_workers_times_the_tasks_one_gets_through_in_the_lookahead(tmp_path):
    cap, _, _ = capacity(tmp_path, {"c_aaa": 3, "c_bbb": 2}, {"aaa": 0.25, "bbb": 60.0})
    assert cap() == {"aaa": 3 * 4, "bbb": 2 * 1}  # 1 s / 0.25 s; a long task: one each


def test_bounds_and_unknowns(tmp_path):
    cap, _, _ = capacity(tmp_path, {"c_aaa": 0}, {"aaa": 0.0001}, max_waiting_per_worker=50,
                         min_waiting_per_worker=2)
    # No member yet counts as one (the first worker finds work); a group Kafka did not
    # describe too; a service with no finished task gets the minimum.
    assert cap() == {"aaa": 50, "bbb": 2}


def test_what_is_known_is_kept_while_kafka_does_not_answer(tmp_path):
    cap, admin, clock = capacity(tmp_path, {"c_aaa": 4, "c_bbb": 1}, {})
    assert cap() == {"aaa": 4, "bbb": 1}
    admin.down = True
    clock.now += 5
    assert cap() == {"aaa": 4, "bbb": 1}
    admin.down, admin.members = False, {"c_aaa": 1, "c_bbb": 1}
    clock.now += 1
    assert cap() == {"aaa": 4, "bbb": 1}  # not due again yet
    clock.now += 4
    assert cap() == {"aaa": 1, "bbb": 1}


def test_a_share_group_counts_its_running_tasks_and_one_more(tmp_path):
    """Kafka cannot be asked for a share group's members: its running tasks (read each
    round) plus one idle worker to be found; its group is not described."""
    running = {"aaa": 5}
    cap, admin, _ = capacity(tmp_path, {"c_aaa": 99, "c_bbb": 2}, {"aaa": 60.0, "bbb": 60.0},
                             kafka={"modes": {"aaa": "share_group"}}, running=running)
    assert cap() == {"aaa": 6, "bbb": 2}
    running["aaa"] = 7
    assert cap() == {"aaa": 8, "bbb": 2}  # at once, not at the next refresh
    assert cap.members("aaa") is None
