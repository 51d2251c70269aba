"""The `taskmill` command through its real entry point, against the whole system: each
command, --json for scripts, the documented exit codes, one-line errors without a
traceback, and `watch` under a pseudo-terminal, its screen rendered by a terminal
emulator (pyte) to see the bars move."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pyte
import pytest

from tests.servers import free_port
from tests.system import TOKEN, System

pytestmark = pytest.mark.e2e

TASKMILL = str(Path(sys.executable).parent / "taskmill")


@pytest.fixture
def system(start_system) -> System:
    return start_system(workers=("slow",))


def taskmill(system: System | None, *args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TASKMILL_TOKEN": TOKEN,
           "TASKMILL_API_URL": url or f"http://127.0.0.1:{system.api_port}"}
    return subprocess.run([TASKMILL, *args], env=env, capture_output=True, text=True, timeout=120)


def one_line_error(run: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert run.returncode == code, (run.returncode, run.stdout, run.stderr)
    assert "Traceback" not in run.stderr and text in run.stderr, run.stderr
    assert run.stderr.startswith("taskmill: error:") or run.stderr.startswith("Usage:"), run.stderr


def test_run_create_status_result_list_cancel(system):
    ran = taskmill(system, "run", "slow", "--condition", '{"sleep_s": 0.2}', "--json")
    assert ran.returncode == 0, ran.stderr
    answer = json.loads(ran.stdout)
    assert answer["status"] == "finished" and answer["data"]["attempt"] == 1
    plain = taskmill(system, "run", "slow", "--condition", '{"sleep_s": 0.2}')
    assert json.loads(plain.stdout)["attempt"] == 1  # stdout: the result alone
    assert "finished" in plain.stderr  # the watching went to stderr

    created = taskmill(system, "create", "slow", "--condition", '{"n": 1}', "--priority", "8")
    task_id = created.stdout.strip()
    assert created.returncode == 0 and task_id.startswith("ts_slow_")
    [status] = json.loads(taskmill(system, "status", task_id, "--json").stdout)
    assert (status["status"], status["pending_reason"]) == ("ready", "not started")
    assert "not started" in taskmill(system, "status", task_id).stdout
    listed = json.loads(taskmill(system, "list", "--service", "slow", "--status", "ready", "--json").stdout)
    assert [t["task_id"] for t in listed["tasks"]] == [task_id] and listed["total"] == 1
    assert taskmill(system, "cancel", task_id, "--reason", "test").stdout.strip() == f"{task_id} ended failed"
    result = json.loads(taskmill(system, "result", task_id, "--json").stdout)
    assert result["message"] == "cancelled: test" and result["cancelled"] is True
    assert json.loads(taskmill(system, "services", "--json").stdout) == ["aaa", "bbb", "slow"]
    stats = {s["service"]: s for s in json.loads(taskmill(system, "services", "--stats", "--json").stdout)}
    assert stats["slow"]["counts"]["failed"] == 1 and stats["slow"]["failed_last_hour"] == 1
    slow = stats["slow"]
    assert slow["failure_rate"] == pytest.approx(1 / (slow["finished_last_hour"] + 1))
    assert stats["aaa"]["breaker"] == "closed"
    table = taskmill(system, "services", "--stats").stdout
    row = " +".join(["slow", *(str(n) for n in slow["counts"].values())])
    assert re.search(row, table) and "closed" in table, table


def test_watch_exits_1_when_a_task_fails(system):
    failing = taskmill(system, "create", "slow", "--condition", '{"fail": "boom"}', "--start").stdout.strip()
    fine = taskmill(system, "create", "slow", "--start").stdout.strip()
    watched = taskmill(system, "watch", failing, fine, "--interval", "0.2")
    assert watched.returncode == 1, watched.stderr
    assert f"{failing} failed" in watched.stdout and f"{fine} finished" in watched.stdout


def test_bad_input_and_a_missing_api_are_one_line_errors(system):
    one_line_error(taskmill(system, "create", "slow", "--condition", "{nope"), 2, "not JSON")
    one_line_error(taskmill(system, "create", "slow", "--condition", "[1]"), 2, "must be a JSON object")
    one_line_error(taskmill(system, "create", "nope"), 3, "service")
    one_line_error(taskmill(system, "result", "ts_slow_" + "0" * 32), 3, "HTTP 404")
    one_line_error(taskmill(None, "services", url=f"http://127.0.0.1:{free_port()}"), 4, "did not answer")
    one_line_error(taskmill(system, "watch", taskmill(system, "create", "slow", "--condition",
                                                      '{"sleep_s": 30}', "--start").stdout.strip(),
                            "--timeout", "1", "--interval", "0.2"), 5, "had not ended")


def test_watch_draws_a_moving_bar_on_a_terminal(system):
    """Under a pseudo-terminal the bar of a task that reports progress grows, then it says
    finished at 100%."""
    task_id = taskmill(system, "create", "slow", "--condition",
                       '{"sleep_s": 4, "progress_every_s": 0.5}', "--start").stdout.strip()
    screen = pyte.Screen(120, 10)
    stream = pyte.ByteStream(screen)
    pid, fd = pty.fork()
    if pid == 0:  # the child: the command on the terminal
        os.environ.update(TASKMILL_TOKEN=TOKEN, TASKMILL_API_URL=f"http://127.0.0.1:{system.api_port}",
                          COLUMNS="120", LINES="10", TERM="xterm")
        os.execv(TASKMILL, [TASKMILL, "watch", task_id, "--interval", "0.2"])
    percents: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            stream.feed(chunk)
            line = next((row for row in screen.display if "running" in row or "finished" in row), "")
            if "%" in line:
                percents.append(int(line.rsplit("%", 1)[0].split()[-1]))
    _, exit_status = os.waitpid(pid, 0)
    final = next(row for row in screen.display if row.strip())
    print(f"\nlast screen line: {final.rstrip()}\npercents seen: {sorted(set(percents))}")
    assert os.waitstatus_to_exitcode(exit_status) == 0
    assert "finished" in final and "100%" in final and "━" in final
    assert len({p for p in percents if 0 < p < 100}) >= 2  # it moved
