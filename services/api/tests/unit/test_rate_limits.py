"""Token buckets: a burst, then one request per 1/rate seconds; shared by every process
of an api instance through one file, so the limit holds whichever process answers."""

import multiprocessing

from taskmill.token_config import Role, TokenConfig
from taskmill_api.rate_limits import RateLimits, retry_after

LIMITED = TokenConfig("c", Role.CLIENT, "0" * 64, rate_per_s=2.0, burst=3)
FREE = TokenConfig("f", Role.CLIENT, "1" * 64)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_burst_then_the_rate():
    clock = Clock()
    limits = RateLimits([LIMITED, FREE], clock=clock)
    assert [limits.wait_s("c") for _ in range(3)] == [0, 0, 0]
    assert limits.wait_s("c") == 0.5 and retry_after(0.5) == 1
    clock.now += 0.5
    assert limits.wait_s("c") == 0  # one request refilled
    assert limits.wait_s("c") == 0.5
    clock.now += 60
    assert [limits.wait_s("c") for _ in range(4)] == [0, 0, 0, 0.5]  # never more than the burst
    assert all(limits.wait_s("f") == 0 for _ in range(100))  # no limit configured


def _take(path, n, results):
    limits = RateLimits([TokenConfig("c", Role.CLIENT, "0" * 64, rate_per_s=0.001, burst=5)], path)
    results.put(sum(1 for _ in range(n) if limits.wait_s("c") == 0))


def test_processes_share_one_bucket(tmp_path):
    path = tmp_path / "rates"
    results = multiprocessing.get_context("spawn").Queue()
    procs = [multiprocessing.get_context("spawn").Process(target=_take, args=(path, 10, results))
             for _ in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
    assert sum(results.get(timeout=5) for _ in procs) == 5  # one burst for all four
