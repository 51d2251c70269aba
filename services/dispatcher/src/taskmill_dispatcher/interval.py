"""A chore that runs every so many seconds inside the dispatcher's loop."""

from __future__ import annotations

import time
from collections.abc import Callable


class Interval:
    """Due at once, then again `seconds` after each `restart` (or as long as it says)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds = seconds
        self._clock = clock
        self._next_at = clock()

    def due(self) -> bool:
        return self._clock() >= self._next_at

    @property
    def seconds(self) -> float:
        return self._seconds

    def restart(self, seconds: float | None = None) -> None:
        """Due again after the usual interval, or after `seconds` this once."""
        self._next_at = self._clock() + (self._seconds if seconds is None else seconds)
