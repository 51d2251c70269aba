"""Per-token request rate limits, shared by the processes of one api instance.

A token bucket per limited token: `burst` requests at once, refilled at `rate_per_s`. The
buckets live in a small file that every gunicorn worker of the instance maps
(`instance_path`, named for the gunicorn master), updated under an exclusive lock, so the
limit holds for the instance as a whole whichever worker process a request lands on. The
clock is CLOCK_MONOTONIC, one for all processes of the machine. Without a path the buckets
are the process's own.
"""

from __future__ import annotations

import fcntl
import math
import mmap
import os
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from taskmill.token_config import TokenConfig

# Per token: the requests left (fractional) and when that was (0: never, a full bucket).
SLOT = struct.Struct("<dd")


def instance_path(master_pid: int) -> Path:
    """The buckets file of the api instance whose gunicorn master has this pid."""
    return Path(tempfile.gettempdir()) / f"taskmill-api-rates-{master_pid}"


class RateLimits:
    """The buckets of the limited tokens."""

    def __init__(self, tokens: Sequence[TokenConfig], path: Path | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        limited = sorted((t for t in tokens if t.limited), key=lambda t: t.name)
        self._slots = {t.name: (n * SLOT.size, float(t.rate_per_s or 0), t.burst)
                       for n, t in enumerate(limited)}
        self._clock = clock
        self._lock = threading.Lock()  # the file lock is per process; threads need their own
        self._fd: int | None = None
        size = max(SLOT.size * len(limited), SLOT.size)
        if path is None:
            self._map = mmap.mmap(-1, size)
            return
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        with self._locked():
            if os.fstat(self._fd).st_size < size:
                os.ftruncate(self._fd, size)  # zeros: every bucket full
        self._map = mmap.mmap(self._fd, size)

    def wait_s(self, name: str) -> float:
        """Take one request from the token's bucket: 0 if it may go now, else how many
        seconds until it could (nothing is taken then)."""
        slot = self._slots.get(name)
        if slot is None:
            return 0.0
        offset, rate, burst = slot
        with self._lock, self._locked():
            left, when = SLOT.unpack_from(self._map, offset)
            now = self._clock()
            left = burst if when == 0 else min(burst, left + (now - when) * rate)
            wait = 0.0 if left >= 1 else (1 - left) / rate
            SLOT.pack_into(self._map, offset, left - 1 if wait == 0 else left, now)
        return wait

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the file's lock (the other processes of the instance wait)."""
        if self._fd is None:
            yield
            return
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


def retry_after(wait_s: float) -> int:
    """The Retry-After header's whole seconds for a wait."""
    return max(1, math.ceil(wait_s))
