"""Helpers the test folders share (fixtures live in the root conftest.py)."""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from taskmill.config import ServiceConfig
from taskmill.schema import Status
from taskmill.store import TaskStore

ROOT = Path(__file__).resolve().parents[1]
CI = os.environ.get("CI", "").lower() == "true"


def unavailable(what: str, ex: BaseException | str | None = None,
                fix: str = "start it with scripts/infra.sh start") -> None:
    """Fail under CI, skip elsewhere: a missing service is a broken install in CI."""
    reason = f"{what} is not reachable ({ex}); {fix}"
    pytest.fail(reason) if CI else pytest.skip(reason)


class Clock:
    """Time that moves only when the test says so (a store's clock)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def at_once(writers: list[tuple[Callable[[], Any], int]]) -> list[BaseException]:
    """Run each (write, times) in a thread of its own, all starting together; the errors."""
    barrier = threading.Barrier(len(writers))
    errors: list[BaseException] = []

    def bump(write: Callable[[], Any], times: int) -> None:
        try:
            barrier.wait()
            for _ in range(times):
                write()
        except BaseException as ex:  # reported by the caller's assertion
            errors.append(ex)

    threads = [threading.Thread(target=bump, args=writer) for writer in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def task_in(store: TaskStore, service: ServiceConfig, status: Status) -> str:
    """A new task of `service` brought to `status` at attempt 1 the way the system does it
    (every due task of the service is published on the way)."""
    task_id = store.create(service, {}, start=True)["task_id"]
    store.outbox.mark_published(store.outbox.due(100, service.name))
    if status in (Status.RUNNING, Status.FINISHED):
        store.report(task_id, Status.RUNNING, attempt=1)
    if status in (Status.FINISHED, Status.FAILED):
        store.report(task_id, status, attempt=1)
    assert store.get(task_id)["status"] == status
    return task_id


def running_task(store: TaskStore, service: ServiceConfig) -> str:
    """A new task of `service` in a TaskStore, started, published and reported running
    (attempt 1)."""
    return task_in(store, service, Status.RUNNING)


def write_config(path: Path, services: Mapping[str, Mapping[str, str]] | None = None,
                 extra: Mapping[str, Any] | None = None) -> Path:
    """Write the shipped config with other services (default: the shipped ones) and settings."""
    raw = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    if services is not None:
        raw["service"] = list(services)
        raw["source_db"] = {name: dict(s) for name, s in services.items()}
    for key, value in (extra or {}).items():
        if isinstance(value, Mapping):
            raw["taskmill"].setdefault(key, {}).update(value)
        else:
            raw["taskmill"][key] = value
    path.write_text(yaml.safe_dump(raw))
    return path


def sample_data() -> ModuleType:
    """Import scripts/sample_data.py: what the example sources hold."""
    spec = importlib.util.spec_from_file_location("sample_data", ROOT / "scripts" / "sample_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
