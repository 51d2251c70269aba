"""What an algorithm gets besides its condition."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class TaskFailed(Exception):
    """Raise from an algorithm to end the task `failed` with this message.

    A declared failure is permanent (a bad condition stays bad) unless `retry=True`: then
    the service's retry policy may run the task again. Any other exception is a bug of the
    algorithm, and permanent too: running it again would fail the same way.
    """

    def __init__(self, message: str, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry


class TaskCancelled(Exception):
    """Raised by `ctx.progress` once the run is to stop (the task was cancelled, or its
    lease lost): the algorithm unwinds from where it reports progress. It need not catch it."""


@dataclass
class TaskContext:
    """The running task: its identity, its data source and a way to report progress."""

    task_id: str
    service: str
    attempt: int | None
    source_name: str
    _source: Callable[[], Any] = field(repr=False)
    _progress: Callable[[float | None, Any], None] = field(repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def cancelled(self) -> bool:
        """True once this run should stop: a client cancelled the task (the worker learns it
        from its next heartbeat, and reports the task failed, cancelled) or the run's lease
        was lost (another attempt runs it). An algorithm that loops checks it and returns
        early; whatever it returns then is not its task's result."""
        return self._stop.is_set() or self._cancel.is_set()

    @property
    def source(self) -> Any:
        """The service's data source: a pymongo Database (`mongo`) or a PyMySQL connection."""
        return self._source()

    def progress(self, fraction: float | None = None, message: Any = None) -> None:
        """Report progress (0..1) and an optional message; also renews the task's lease.
        Raises TaskCancelled once the run is to stop."""
        if fraction is not None and not 0.0 <= fraction <= 1.0:
            raise ValueError("progress must be between 0 and 1")
        if self.cancelled:
            raise TaskCancelled(f"task {self.task_id} is to stop")
        self._progress(fraction, message)
