"""The whole system as real processes: api (gunicorn), dispatcher and both workers.

Each system gets its own task database, topics and consumer groups, so tests never see
each other's tasks; Kafka, FerretDB and MariaDB are the shared real ones.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from taskmill.client import ApiClient
from taskmill.schema import FINAL
from tests.helpers import ROOT, write_config

BIN = Path(sys.executable).parent
TOKEN = "e2e-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class System:
    """A running Taskmill: its processes, its api client and its settings."""

    workdir: Path
    env: dict[str, str]
    services: dict[str, dict[str, str]]
    api: ApiClient
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        proc = subprocess.Popen([*args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                cwd=ROOT)
        log.close()
        self.procs[name] = proc
        return proc

    def start_worker(self, service: str, name: str | None = None) -> subprocess.Popen[bytes]:
        return self.start(name or f"worker-{service}", str(BIN / "python"), "-m",
                          f"taskmill_worker_{service}")

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout_s: float = 30) -> int:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.workdir.glob("*.log")))

    def wait_final(self, task_ids: list[str], timeout_s: float = 60) -> list[dict[str, Any]]:
        """Poll status_task until every task is finished or failed; return the statuses."""
        deadline = time.monotonic() + timeout_s
        while True:
            statuses = [s for i in range(0, len(task_ids), 10)
                        for s in self.api.status_task(task_ids[i:i + 10])]
            if all(s["status"] in FINAL for s in statuses):
                return statuses
            if time.monotonic() > deadline:
                pending = [s for s in statuses if s["status"] not in FINAL]
                pytest.fail(f"{len(pending)} tasks not final after {timeout_s}s, e.g. "
                            f"{pending[:3]}\n{self.logs()}")
            time.sleep(0.5)


def wait_ready(url: str, proc: subprocess.Popen[bytes], system: System, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the api exited with {proc.returncode}\n{system.logs()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"{url} not ready after {timeout_s}s\n{system.logs()}")


@pytest.fixture
def start_system(tmp_path: Path, kafka_servers: str, mongo_uri: str, mysql_settings: dict[str, Any],
                 task_db: str, unique: str) -> Iterator[Callable[..., System]]:
    """Start a whole system of this test's own; stopped at the end of the test."""
    systems: list[System] = []

    def start(workers: tuple[str, ...] = ("aaa", "bbb"), **lifecycle: float) -> System:
        services = {name: {"source_name": source, "topic_name": f"mq_{name}_{unique}",
                           "consumer_id": f"c_{name}_{unique}"}
                    for name, source in (("aaa", "mongo"), ("bbb", "mysql"))}
        port = free_port()
        config = write_config(tmp_path / "config.yaml", services,
                              {"lifecycle": {"heartbeat_s": 2, **lifecycle}})
        env = {**os.environ, "AUTH_TOKEN": TOKEN, "TASKMILL_CONFIG": str(config),
               "MONGO_URI": mongo_uri, "MONGO_DBNAME": task_db,
               "KAFKA_BOOTSTRAP_SERVERS": kafka_servers,
               "TASKMILL_API_URL": f"http://127.0.0.1:{port}", "API_BIND": f"127.0.0.1:{port}",
               "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
               "SOURCE_MONGO_URI": mongo_uri,
               "SOURCE_MYSQL_HOST": mysql_settings["host"],
               "SOURCE_MYSQL_PORT": str(mysql_settings["port"]),
               "SOURCE_MYSQL_USER": mysql_settings["user"],
               "SOURCE_MYSQL_PASSWORD": mysql_settings["password"]}
        system = System(tmp_path, env, services, ApiClient(f"http://127.0.0.1:{port}", TOKEN))
        systems.append(system)
        api = system.start("api", str(BIN / "gunicorn"), "-c", "python:taskmill_api.gunicorn_conf",
                           "taskmill_api.wsgi:app")
        wait_ready(f"http://127.0.0.1:{port}/readyz", api, system)
        system.start("dispatcher", str(BIN / "python"), "-m", "taskmill_dispatcher",
                     "--metrics-port", "0")
        for service in workers:
            system.start_worker(service)
        return system

    yield start
    for system in systems:
        for name in list(system.procs):
            system.stop(name)
        system.api.close()
