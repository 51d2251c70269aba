"""A worker for the `slow` service of the test systems: takes `sleep_s` seconds.

Its result says which process and attempt ran it, so a test can tell whose outcome the
task kept. A condition's `result_key` makes it answer `{result_key: 1}` instead (a test's
way to hand the api a result it must refuse: a condition cannot hold such a key). It stops
early when cancelled, unless the condition has `ignore_cancel` (an algorithm that never
checks). A condition's `fail` makes the run fail with that message after its sleep
(`retry` true: a failure the service's retry policy may run again); its
`progress_every_s` reports the fraction of the sleep done that often.
`python -m tests.slow_worker`.
"""

from __future__ import annotations

import os
import time
from typing import Any

from taskmill.worker import TaskContext, TaskFailed, serve


def run(condition: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    began = time.monotonic()
    total = float(condition.get("sleep_s", 0))
    deadline, every = began + total, condition.get("progress_every_s")
    reported = began
    while time.monotonic() < deadline:
        if every and time.monotonic() - reported >= float(every):
            reported = time.monotonic()
            ctx.progress(min((reported - began) / total, 1.0))
        if ctx.cancelled and not condition.get("ignore_cancel"):
            return {"stopped": True}
        time.sleep(min(0.05, max(deadline - time.monotonic(), 0)))
    if "fail" in condition:
        raise TaskFailed(str(condition["fail"]), retry=bool(condition.get("retry")))
    if "result_key" in condition:
        return {str(condition["result_key"]): 1}
    return {"pid": os.getpid(), "attempt": ctx.attempt}


if __name__ == "__main__":
    serve("slow", run)
