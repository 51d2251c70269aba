"""A worker for the `slow` service of the test systems: takes `sleep_s` seconds.

Its result says which process and attempt ran it, so a test can tell whose outcome the
task kept. `python -m tests.slow_worker`.
"""

from __future__ import annotations

import os
import time
from typing import Any

from taskmill.worker import TaskContext, serve


def run(condition: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    deadline = time.monotonic() + float(condition.get("sleep_s", 0))
    while time.monotonic() < deadline:
        time.sleep(min(0.05, max(deadline - time.monotonic(), 0)))
    return {"pid": os.getpid(), "attempt": ctx.attempt}


if __name__ == "__main__":
    serve("slow", run)
