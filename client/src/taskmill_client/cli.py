"""`taskmill`: the api from the command line.

Every command takes `--json` (machine-readable output on stdout) and reads the api's
address and token from `--url`/`--token` or TASKMILL_API_URL/TASKMILL_TOKEN. Errors are
one line on stderr, never a traceback. Exit codes:

    0  done (watch/run: every task finished)
    1  watch/run: a task failed (or is unknown)
    2  bad usage or input (click's, e.g. a condition that is not JSON)
    3  the api refused the request (400, 401, 403, 404, 409, 413, 429)
    4  the api is unreachable or failing (5xx)
    5  watch/run: the timeout passed before the tasks ended
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table

from taskmill_client.client import Taskmill
from taskmill_client.errors import ApiError, TaskmillError, WaitTimeout
from taskmill_client.models import TaskStatus

STATUSES = ["ready", "waiting", "running", "finished", "failed"]
EXIT_FAILED, EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_TIMEOUT = 1, 3, 4, 5
F = TypeVar("F", bound=Callable[..., Any])


class Condition(click.ParamType):
    """A JSON object, given inline or as @file."""

    name = "JSON|@FILE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, dict):
            return value
        text = str(value)
        if text.startswith("@"):
            try:
                text = Path(text[1:]).read_text(encoding="utf-8")
            except OSError as ex:
                self.fail(f"cannot read {text[1:]}: {ex.strerror}", param, ctx)
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as ex:
            self.fail(f"not JSON: {ex}", param, ctx)
        if not isinstance(parsed, dict):
            self.fail(f"must be a JSON object, not {type(parsed).__name__}", param, ctx)
        return parsed


def output(value: Any) -> str:
    """JSON for --json (dataclasses as objects, times in the contract's format)."""
    def plain(item: Any) -> Any:
        if isinstance(item, datetime):
            return item.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        raise TypeError(type(item).__name__)
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    elif isinstance(value, list):
        value = [asdict(v) if is_dataclass(v) and not isinstance(v, type) else v for v in value]
    return json.dumps(value, default=plain, ensure_ascii=False)


def handled(command: F) -> F:
    """Turn the client's errors into one line on stderr and the documented exit code."""
    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except WaitTimeout as ex:
            _fail(str(ex), EXIT_TIMEOUT)
        except ApiError as ex:
            _fail(ex.message + f" (HTTP {ex.status})", EXIT_UNAVAILABLE if ex.status >= 500 else EXIT_REFUSED)
        except TaskmillError as ex:  # the api unreachable
            _fail(str(ex), EXIT_UNAVAILABLE)
    return run  # type: ignore[return-value]


def _fail(message: str, code: int) -> None:
    click.echo(f"taskmill: error: {message}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--url", envvar="TASKMILL_API_URL", default="http://127.0.0.1:8000", show_default=True,
              help="The api's address [env TASKMILL_API_URL].")
@click.option("--token", envvar="TASKMILL_TOKEN", default="", show_default=False,
              help="The api token [env TASKMILL_TOKEN].")
@click.version_option(package_name="taskmill-client")
@click.pass_context
def main(ctx: click.Context, url: str, token: str) -> None:
    """Create, start, watch and fetch Taskmill tasks.

    \b
    taskmill run aaa --condition '{"city": "Berlin"}'     create, start, watch, print the result
    taskmill create bbb --condition @query.json --start
    taskmill watch ts_bbb_...                            live progress; exit 1 if one fails
    taskmill status ts_aaa_... ts_bbb_... --json
    """
    client = Taskmill(url, token)
    ctx.call_on_close(client.close)
    ctx.obj = client


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@main.command()
@json_option
@click.option("--stats", is_flag=True, help="Each service's tasks by status, last hour, workers, breaker.")
@click.pass_obj
@handled
def services(client: Taskmill, as_json: bool, stats: bool) -> None:
    """List the services tasks can be created for (with --stats: how each is doing)."""
    if not stats:
        names = client.services()
        click.echo(output(names) if as_json else "\n".join(names))
        return
    found = client.service_stats()
    if as_json:
        click.echo(output(found))
        return
    table = Table("service", *STATUSES, "ended/min (1 h)", "failed (1 h)", "workers", "breaker", box=None)
    for s in found:
        rate = "-" if s.failure_rate is None else f"{s.failure_rate:.0%}"
        table.add_row(s.service, *(str(s.counts.get(status, 0)) for status in STATUSES),
                      f"{s.per_minute:.2f}", f"{s.failed_last_hour} ({rate})",
                      "?" if s.workers is None else str(s.workers), s.breaker.replace("_", " "))
    Console().print(table)


def new_task_options(command: F) -> F:
    """SERVICE and the options of a new task (create, run)."""
    for option in reversed([
        click.argument("service"),
        click.option("--condition", type=Condition(), default="{}", show_default=True,
                     help="The task's condition: JSON, or @file."),
        click.option("--priority", type=click.IntRange(0, 9), help="0 (lowest) to 9; default 5."),
        click.option("--key", "idempotency_key",
                     help="An idempotency key: the same key, the same task (run once)."),
    ]):
        command = option(command)
    return command


def watch_options(command: F) -> F:
    """How long and how often to watch (watch, run)."""
    command = click.option("--interval", "poll_s", type=click.FloatRange(min=0.1), default=1.0,
                           show_default=True, help="Seconds between polls.")(command)
    return click.option("--timeout", "timeout_s", type=click.FloatRange(min=0),
                        help="Give up after seconds.")(command)


@main.command()
@new_task_options
@click.option("--start", is_flag=True, help="Start it at once.")
@json_option
@click.pass_obj
@handled
def create(client: Taskmill, service: str, condition: dict[str, Any], start: bool,
           priority: int | None, idempotency_key: str | None, as_json: bool) -> None:
    """Create a task of SERVICE; print its id."""
    created = client.create(service, condition, start, priority, idempotency_key)
    click.echo(output(created) if as_json else created.task_id)


@main.command()
@click.argument("task_ids", nargs=-1, required=True)
@json_option
@click.pass_obj
@handled
def start(client: Taskmill, task_ids: Sequence[str], as_json: bool) -> None:
    """Start tasks (ready ones, or failed ones again)."""
    for task_id in task_ids:
        client.start(task_id)
        click.echo(output({"task_id": task_id, "started": True}) if as_json else f"{task_id} started")


@main.command()
@click.argument("task_ids", nargs=-1, required=True)
@json_option
@click.pass_obj
@handled
def status(client: Taskmill, task_ids: Sequence[str], as_json: bool) -> None:
    """Show where tasks are, and why those that wait do."""
    statuses = client.status(task_ids)
    if as_json:
        click.echo(output(statuses))
        return
    table = Table("task", "status", "attempt", "progress", "why / message", box=None)
    for s in statuses:
        table.add_row(s.task_id, s.status, str(s.attempt),
                      "" if s.progress is None else f"{s.progress:.0%}",
                      s.pending_reason or _text(s.message))
    Console().print(table)


@main.command()
@click.argument("task_id")
@json_option
@click.pass_obj
@handled
def result(client: Taskmill, task_id: str, as_json: bool) -> None:
    """Print a task's result.

    Its data once finished; with --json the whole answer (times, attempt, history)."""
    answer = client.result(task_id)
    if as_json:
        click.echo(output(answer))
    elif answer.status == "finished":
        click.echo(json.dumps(answer.data, indent=2, ensure_ascii=False))
    else:
        click.echo(f"{task_id} is {answer.status}" + (f": {_text(answer.message)}" if answer.message else ""))


@main.command(name="list")
@click.option("--service")
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--page", type=click.IntRange(1), default=1, show_default=True)
@click.option("--page-size", type=click.IntRange(1, 100), default=20, show_default=True)
@json_option
@click.pass_obj
@handled
def list_tasks(client: Taskmill, service: str | None, status: str | None, page: int,
               page_size: int, as_json: bool) -> None:
    """List tasks, newest first."""
    found = client.list(service, status, page, page_size)
    if as_json:
        click.echo(output(found))
        return
    table = Table("task", "service", "status", "created", box=None,
                  title=f"{found.total} tasks, page {page}")
    for t in found.tasks:
        table.add_row(t.task_id, t.service, t.status, output(t.create_time).strip('"'))
    Console().print(table)


@main.command()
@click.argument("task_id")
@click.option("--reason", help="Why; the task ends failed with `cancelled: <reason>`.")
@json_option
@click.pass_obj
@handled
def cancel(client: Taskmill, task_id: str, reason: str | None, as_json: bool) -> None:
    """Cancel a task that has not ended."""
    left = client.cancel(task_id, reason)
    click.echo(output({"task_id": task_id, "status": left}) if as_json else
               f"{task_id} {'ended failed' if left == 'failed' else 'is asked to stop'}")


@main.command()
@click.argument("task_ids", nargs=-1, required=True)
@watch_options
@json_option
@click.pass_obj
@handled
def watch(client: Taskmill, task_ids: Sequence[str], timeout_s: float | None, poll_s: float,
          as_json: bool) -> None:
    """Follow tasks until they end, with progress bars.

    A bar each on a terminal, else a line per change (a JSON line with --json). Exits 1
    if any failed."""
    final = _watch(client, task_ids, timeout_s, poll_s, json_lines=as_json, err=False)
    if any(s.status != "finished" for s in final):
        sys.exit(EXIT_FAILED)


@main.command()
@new_task_options
@watch_options
@json_option
@click.pass_obj
@handled
def run(client: Taskmill, service: str, condition: dict[str, Any], priority: int | None,
        idempotency_key: str | None, timeout_s: float | None, poll_s: float, as_json: bool) -> None:
    """Create, start and watch a task; print its result.

    The watching goes to stderr, the result to stdout. Exits 1 if the task fails."""
    task_id = client.create(service, condition, True, priority, idempotency_key).task_id
    click.echo(f"task {task_id}", err=True)
    [final] = _watch(client, [task_id], timeout_s, poll_s, json_lines=False, err=True)
    answer = client.result(task_id)
    if as_json:
        click.echo(output(answer))
    elif final.status == "finished":
        click.echo(json.dumps(answer.data, indent=2, ensure_ascii=False))
    else:
        click.echo(f"{task_id} {final.status}: {_text(answer.message)}", err=True)
    if final.status != "finished":
        sys.exit(EXIT_FAILED)


def _watch(client: Taskmill, task_ids: Sequence[str], timeout_s: float | None, poll_s: float,
           json_lines: bool, err: bool) -> list[TaskStatus]:
    """Poll until the tasks end, showing them on stdout (or stderr): bars on a terminal,
    else a line per change (JSON with json_lines); their last statuses."""
    console = Console(stderr=err)
    if json_lines or not console.is_terminal:
        return _watch_lines(client, task_ids, timeout_s, poll_s, json_lines, err)
    columns = (TextColumn("{task.fields[short]}"), TextColumn("{task.fields[state]:<9}"),
               BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TextColumn("{task.fields[why]}"))
    with Progress(*columns, console=console, refresh_per_second=4) as progress:
        bars: dict[str, TaskID] = {t: progress.add_task(t, total=1.0, short=_short(t), state="…",
                                                        why="") for t in task_ids}

        def show(statuses: Sequence[TaskStatus]) -> None:
            for s in statuses:
                done = 1.0 if s.status == "finished" else (s.progress or 0.0)
                progress.update(bars[s.task_id], completed=done, state=s.status,
                                why=s.pending_reason or ("" if s.status != "failed" else _text(s.message)))
        return list(client.wait(task_ids, timeout_s, poll_s, show).values())


def _watch_lines(client: Taskmill, task_ids: Sequence[str], timeout_s: float | None, poll_s: float,
                 as_json: bool, err: bool) -> list[TaskStatus]:
    seen: dict[str, tuple[Any, ...]] = {}

    def show(statuses: Sequence[TaskStatus]) -> None:
        for s in statuses:
            key = (s.status, s.progress, s.pending_reason)
            if seen.get(s.task_id) != key:
                seen[s.task_id] = key
                click.echo(output(s) if as_json else " ".join(filter(None, [
                    s.task_id, s.status, None if s.progress is None else f"{s.progress:.0%}",
                    s.pending_reason])), err=err)
    return list(client.wait(task_ids, timeout_s, poll_s, show).values())


def _short(task_id: str) -> str:
    return task_id if len(task_id) <= 20 else f"{task_id[:14]}…{task_id[-5:]}"


def _text(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else json.dumps(value)
