"""The fault suite's audit: every task a scenario created ends final, exactly once.

Each scenario calls `audit`, which reads every task's result and history through the
api, records a tally (created / finished / failed / lost / run twice) that is printed at
the end of the run, and fails the test if any task was lost or ran twice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import astuple, dataclass, fields
from typing import Any

import pytest

from taskmill.schema import FINAL
from tests.system import System, topic_messages

_TALLIES: list[Tally] = []


@dataclass
class Tally:
    scenario: str
    mode: str
    created: int
    finished: int
    failed: int
    lost: int
    run_twice: int
    recovered: int
    extra_messages: int
    survived: str  # poison scenarios: every process of the system still up ("yes"), else "-"


def still_running(system: System) -> list[str]:
    """The system's processes that are still up."""
    return [name for name, proc in system.procs.items() if proc.poll() is None]


def audit(system: System, scenario: str, task_ids: list[str],
          poison: bool = False) -> list[dict[str, Any]]:
    """Check every task ended once, with the history to prove it; return their results.
    A poison scenario also checks that no process of the system died."""
    results = [system.api.result_task(task_id) for task_id in task_ids]
    statuses = Counter(r["status"] for r in results)
    twice, broken = [], []
    for result in results:
        history = result["history"]
        ends = [e for e in history if e["status"] in FINAL]
        if len(ends) > 1:
            twice.append(result["task_id"])
        if result["status"] in FINAL and not _proves_its_end(result):
            broken.append(result["task_id"])
    messages = topic_messages(system.env["KAFKA_BOOTSTRAP_SERVERS"],
                              system.services["slow"]["topic_name"])
    mode = system.config.service("slow").mode
    tally = Tally(scenario, mode, len(task_ids), statuses["finished"], statuses["failed"],
                  sum(n for status, n in statuses.items() if status not in FINAL), len(twice),
                  sum(1 for r in results if r["attempt"] > 1),
                  sum(messages.values()) - len(messages),
                  "-" if not poison else "yes" if still_running(system) == list(system.procs) else "no")
    _TALLIES.append(tally)
    assert tally.survived != "no", f"processes that died: {system.logs()[-5000:]}"
    assert tally.lost == 0, f"tasks not final: {[r for r in results if r['status'] not in FINAL][:3]}"
    assert not twice, f"tasks that ended twice: {twice[:5]}"
    assert not broken, f"tasks whose history does not prove their end: {broken[:5]}"
    return results


def _proves_its_end(result: dict[str, Any]) -> bool:
    """The last event is the task's end, at its current attempt; a failure that is not a
    lost worker was preceded by a run of that attempt."""
    last = result["history"][-1]
    if (last["status"], last["attempt"]) != (result["status"], result["attempt"]):
        return False
    if result["status"] == "finished":
        return any(e["status"] == "running" and e["attempt"] == result["attempt"]
                   for e in result["history"])
    return True


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _TALLIES:
        return
    names = [f.name for f in fields(Tally)]
    rows = [names, *[[str(v) for v in astuple(t)] for t in _TALLIES]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(names))]
    terminalreporter.write_sep("-", "fault scenarios")
    for row in rows:
        terminalreporter.write_line("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


@pytest.fixture
def fast_lifecycle() -> dict[str, float]:
    """Short leases and timeouts so that recovery happens within seconds."""
    return {"lease_s": 4, "heartbeat_s": 1, "recovery_interval_s": 0.5, "dispatch_claim_s": 5,
            "max_attempts": 4, "shutdown_grace_s": 10}


@pytest.fixture(params=["consumer_group", "share_group"])
def fast_kafka(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Each scenario runs in both Kafka modes; a consumer group's dead member is noticed soon."""
    return {"session_timeout_ms": 6000, "mode": request.param}
