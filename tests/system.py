"""The whole system as real processes: api (gunicorn), dispatcher and workers.

Each system gets its own task database, topics and consumer groups, so tests never see
each other's tasks. Kafka and the task store are the shared servers unless the test
passes private ones (tests/servers.py) that it may stop and kill.

Services: `aaa` and `bbb` run the shipped workers; `slow` runs tests/slow_worker.py, an
algorithm that takes `sleep_s` seconds and reports which process ran it. The benchmarks
launch systems the same way (`launch`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from taskmill.client import ApiClient
from taskmill.codec import decode
from taskmill.config import Config, load_config
from taskmill.errors import MessageDecodeError
from taskmill.schema import FINAL
from tests.helpers import ROOT, write_config
from tests.servers import Servers, free_port

BIN = Path(sys.executable).parent
TOKEN = "e2e-token"
WORKERS = {"aaa": "taskmill_worker_aaa", "bbb": "taskmill_worker_bbb", "slow": "tests.slow_worker"}
SOURCES = {"aaa": "mongo", "bbb": "mysql", "slow": "mongo"}


def gunicorn(app: str) -> list[str]:
    """The command that serves a WSGI app under the api's gunicorn settings."""
    return [str(BIN / "gunicorn"), "-c", "python:taskmill_api.gunicorn_conf", app]


def create_started(system: System, count: int, sleep_s: float = 0.0) -> list[str]:
    """Create and start `count` tasks of the `slow` service that sleep sleep_s, from four
    threads."""
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda _: system.api.create_task("slow", {"sleep_s": sleep_s},
                                                              start=True), range(count)))


class SystemFailure(AssertionError):
    """The system did not reach a state in time (carries the processes' logs)."""


def wait_until(what: str, condition: Callable[[], bool], timeout_s: float = 60,
               details: Callable[[], str] = str) -> None:
    """Poll condition until it holds; raise SystemFailure (with details()) after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise SystemFailure(f"not true after {timeout_s}s: {what}\n{details()}")
        time.sleep(0.05)


def topic_reader(servers: str, topic: str, timeout_s: float = 30, **settings: Any) -> Consumer:
    """A consumer outside any group, on every partition of topic from the start (once the
    topic exists)."""
    consumer = Consumer({"bootstrap.servers": servers, "group.id": f"reader-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, **settings})
    partitions: dict[int, Any] = {}

    def created() -> bool:
        partitions.update(consumer.list_topics(topic, timeout=5).topics[topic].partitions)
        return bool(partitions)
    wait_until(f"topic {topic} exists", created, timeout_s)
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    return consumer


@dataclass
class System:
    """A running Taskmill: its processes, its api client and its settings."""

    workdir: Path
    env: dict[str, str]
    services: dict[str, dict[str, str]]
    api: ApiClient
    api_port: int
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # /metrics of each process that serves it, by process name.
    metrics_urls: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> Config:
        """The configuration its processes load."""
        return load_config(self.env["TASKMILL_CONFIG"], self.env)

    def start(self, name: str, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.log_path(name), "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen([*args], env={**self.env, **(env or {})}, stdout=log,
                                stderr=subprocess.STDOUT, cwd=ROOT)
        log.close()
        self.procs[name] = proc
        return proc

    def start_api(self, name: str = "api") -> subprocess.Popen[bytes]:
        """Start the api under gunicorn and wait until it is ready."""
        # Only the api is multiprocess (gunicorn workers); the others expose their own.
        proc = self.start(name, *gunicorn("taskmill_api.wsgi:app"),
                          env={"PROMETHEUS_MULTIPROC_DIR": str(self.workdir / "prometheus")})
        self.wait_ready(proc)
        self.metrics_urls[name] = f"http://127.0.0.1:{self.api_port}/metrics"
        return proc

    def start_dispatcher(self, name: str = "dispatcher", metrics_port: int = 0) -> subprocess.Popen[bytes]:
        """Start a dispatcher (serving /metrics on metrics_port unless it is 0)."""
        return self._start_served(name, metrics_port, "taskmill_dispatcher")

    def start_worker(self, service: str, name: str | None = None, metrics_port: int = 0,
                     env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a worker of service (serving /metrics on metrics_port unless it is 0)."""
        return self._start_served(name or f"worker-{service}", metrics_port, WORKERS[service], env)

    def _start_served(self, name: str, metrics_port: int, module: str,
                      env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        if metrics_port:
            self.metrics_urls[name] = f"http://127.0.0.1:{metrics_port}/metrics"
        return self.start(name, str(BIN / "python"), "-m", module, "--metrics-port", str(metrics_port),
                          env=env)

    def metric(self, name: str, **labels: str) -> dict[str, float]:
        """The sum of a metric's samples (whose labels include `labels`), by running process."""
        return {proc: metric_value(scrape(url), name, **labels)
                for proc, url in self.metrics_urls.items() if proc in self.procs}

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout_s: float = 30) -> int:
        """Signal a process and wait for it to exit; return its exit code. One still
        running after timeout_s is aborted (SIGABRT: Python's faulthandler, on in
        `environment`, writes every thread's stack to its log, then -6), else killed; its
        log is then printed (pytest shows it with a failure, at a test or its teardown)."""
        proc = self.procs.pop(name)
        stuck = False
        for signum, wait_s in ((sig, timeout_s), (signal.SIGABRT, 5.0), (signal.SIGKILL, None)):
            if proc.poll() is not None:
                break
            stuck = signum != sig
            proc.send_signal(signum)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait_s)
        if stuck:
            log = self.log_path(name).read_text(errors="replace")
            print(f"--- {name} still ran {timeout_s:.0f} s after signal {sig}: aborted; "
                  f"its log\n{log[-6000:]}")
        return proc.returncode

    def kill(self, name: str) -> None:
        """kill -9, as a crash."""
        self.stop(name, signal.SIGKILL)

    def shutdown(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL) and close the api client."""
        for name in list(self.procs):
            self.stop(name)
        self.api.close()

    def log_path(self, name: str) -> Path:
        """Where a process started as `name` writes its output."""
        return self.workdir / f"{name}.log"

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.workdir.glob("*.log")))

    def statuses(self, task_ids: list[str]) -> list[dict[str, Any]]:
        return [s for i in range(0, len(task_ids), 10) for s in self.api.status_task(task_ids[i:i + 10])]

    def wait_until(self, what: str, condition: Callable[[], bool], timeout_s: float = 60) -> None:
        """Poll condition until it holds; fail with the processes' logs after timeout_s."""
        wait_until(what, condition, timeout_s, self.logs)

    def wait_final(self, task_ids: list[str], timeout_s: float = 60) -> list[dict[str, Any]]:
        """Poll status_task until every task is finished or failed; return the statuses."""
        deadline = time.monotonic() + timeout_s
        while True:
            statuses = self.statuses(task_ids)
            if all(s["status"] in FINAL for s in statuses):
                return statuses
            if time.monotonic() > deadline:
                pending = [s for s in statuses if s["status"] not in FINAL]
                raise SystemFailure(f"{len(pending)} tasks not final after {timeout_s}s, e.g. "
                                    f"{pending[:3]}\n{self.logs()}")
            time.sleep(0.5)

    def wait_ready(self, proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
        url = f"http://127.0.0.1:{self.api_port}/readyz"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemFailure(f"the api exited with {proc.returncode}\n{self.logs()}")
            try:
                with urllib.request.urlopen(url, timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise SystemFailure(f"{url} not ready after {timeout_s}s\n{self.logs()}")


def scrape(url: str) -> str:
    """The text of a Prometheus exposition."""
    with urllib.request.urlopen(url, timeout=5) as answer:
        return str(answer.read().decode())


def metric_value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == name and labels.items() <= s.labels.items())


def topic_messages(servers: str, topic: str, timeout_s: float = 30) -> Counter[tuple[str, int]]:
    """How many messages the topic holds for each (task_id, attempt); messages that are
    not tasks are left out."""
    consumer = topic_reader(servers, topic, **{"enable.partition.eof": True})
    try:
        partitions = consumer.assignment()
        counts: Counter[tuple[str, int]] = Counter()
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(at_end) < len(partitions) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                continue
            try:
                task = decode(msg.value(), msg.headers())
            except MessageDecodeError:  # not a task: a poison scenario wrote it
                continue
            counts[(task.task_id, task.attempt or 0)] += 1
        assert len(at_end) == len(partitions), f"could not read {topic} to its end"
        return counts
    finally:
        consumer.close()


def topic_name(service: str, unique: str) -> str:
    """The topic of a service in the system named by `unique`."""
    return f"mq_{service}_{unique}"


def environment(workdir: Path, servers: Servers, task_db: str, unique: str,
                lifecycle: Mapping[str, float] | None = None,
                kafka_settings: Mapping[str, int] | None = None,
                settings: Mapping[str, Any] | None = None,
                ) -> tuple[dict[str, str], dict[str, dict[str, str]], int]:
    """The environment of a system of its own: topics, groups and a database of its own,
    a config file in workdir (with these `taskmill.` settings), the api on a free port.
    Returns (env, services, api port)."""
    services = {name: {"source_name": source, "topic_name": topic_name(name, unique),
                       "consumer_id": f"c_{name}_{unique}"}
                for name, source in SOURCES.items()}
    port = free_port()
    config = write_config(workdir / "config.yaml", services,
                          {"lifecycle": {"heartbeat_s": 2, **(lifecycle or {})},
                           "kafka": dict(kafka_settings or {}), **(settings or {})})
    inherited = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env = {**inherited, "AUTH_TOKEN": TOKEN, "TASKMILL_CONFIG": str(config),
           "MONGO_URI": servers.mongo, "MONGO_DBNAME": task_db,
           "KAFKA_BOOTSTRAP_SERVERS": servers.kafka,
           "TASKMILL_API_URL": f"http://127.0.0.1:{port}", "API_BIND": f"127.0.0.1:{port}",
           "SOURCE_MONGO_URI": servers.source_mongo,
           "SOURCE_MYSQL_HOST": servers.mysql["host"],
           "SOURCE_MYSQL_PORT": str(servers.mysql["port"]),
           "SOURCE_MYSQL_USER": servers.mysql["user"],
           "SOURCE_MYSQL_PASSWORD": servers.mysql["password"],
           # A process that will not stop is aborted by System.stop: its threads' stacks.
           "PYTHONFAULTHANDLER": "1"}
    return env, services, port


def launch(workdir: Path, servers: Servers, task_db: str, unique: str,
           workers: tuple[str, ...] = ("aaa", "bbb"), lifecycle: Mapping[str, float] | None = None,
           kafka_settings: Mapping[str, int] | None = None, metrics: bool = False,
           settings: Mapping[str, Any] | None = None) -> System:
    """Start api, dispatcher and workers with topics, groups and a database of their own
    (with `metrics`, the dispatcher and the workers serve /metrics on ports of their own)."""
    env, services, port = environment(workdir, servers, task_db, unique, lifecycle, kafka_settings,
                                      settings)
    system = System(workdir, env, services, ApiClient(f"http://127.0.0.1:{port}", TOKEN), port)

    def metrics_port() -> int:
        return free_port() if metrics else 0
    try:
        system.start_api()
        system.start_dispatcher(metrics_port=metrics_port())
        for service in workers:
            system.start_worker(service, metrics_port=metrics_port())
    except BaseException:
        system.shutdown()
        raise
    return system


@pytest.fixture
def start_system(tmp_path: Path, kafka_servers: str, mongo_uri: str, mysql_settings: dict[str, Any],
                 task_db: str, unique: str) -> Iterator[Callable[..., System]]:
    """Start a whole system of this test's own; every process is stopped after the test."""
    systems: list[System] = []

    def start(workers: tuple[str, ...] = ("aaa", "bbb"), kafka: str | None = None,
              mongo: str | None = None, lifecycle: Mapping[str, float] | None = None,
              kafka_settings: Mapping[str, int] | None = None, metrics: bool = False,
              settings: Mapping[str, Any] | None = None) -> System:
        servers = Servers(kafka or kafka_servers, mongo or mongo_uri, mongo_uri, mysql_settings)
        system = launch(tmp_path, servers, task_db, unique, workers, lifecycle, kafka_settings,
                        metrics, settings)
        systems.append(system)
        return system

    yield start
    for system in systems:
        system.shutdown()
