"""The servers tests run against: the shared ones (`Servers.from_env`), and private Kafka
and FerretDB servers that a test may stop, kill and start again.

Private servers are started by `scripts/infra.sh` exactly like the shared ones, with ports
and a state directory of their own, so the shared servers other tests use are never touched.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers import ROOT

INFRA = ROOT / "scripts" / "infra.sh"
_PORT_VARS = {"kafka": ("KAFKA_PORT", "KAFKA_CONTROLLER_PORT", "KAFKA_CONTAINER_PORT"),
              "ferretdb": ("FERRETDB_PORT",)}


@dataclass(frozen=True)
class Servers:
    """Where a system's servers are: Kafka, the task store, the sample sources."""

    kafka: str
    mongo: str
    source_mongo: str
    mysql: Mapping[str, Any]

    @classmethod
    def from_env(cls) -> Servers:
        """The shared servers, as scripts/test.sh and scripts/bench.sh export them."""
        mongo = os.environ.get("MONGO_URI", "mongodb://127.0.0.1:27017/")
        mysql = {"host": os.environ.get("SOURCE_MYSQL_HOST", "127.0.0.1"),
                 "port": int(os.environ.get("SOURCE_MYSQL_PORT", "3306")),
                 "user": os.environ.get("SOURCE_MYSQL_USER", "taskmill"),
                 "password": os.environ.get("SOURCE_MYSQL_PASSWORD", ""),
                 "database": os.environ.get("SOURCE_MYSQL_DATABASE", "taskmill_sample")}
        return cls(os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"), mongo, mongo, mysql)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrivateServer:
    """One server of infra.sh (kafka or ferretdb) with its own ports and data."""

    name: str
    state: Path
    ports: dict[str, int] = field(default_factory=dict)

    @classmethod
    def create(cls, name: str) -> PrivateServer:
        # Short path: FerretDB's unix socket lives in it (at most 107 bytes).
        state = Path(tempfile.mkdtemp(prefix=f"tm-{name}-", dir="/tmp"))
        state.chmod(0o755)  # PostgreSQL runs as its own user under root
        return cls(name, state, {var: free_port() for var in _PORT_VARS[name]})

    @property
    def address(self) -> str:
        port = self.ports[_PORT_VARS[self.name][0]]
        if self.name == "kafka":
            return f"127.0.0.1:{port}"
        return f"mongodb://127.0.0.1:{port}/"

    @property
    def pid(self) -> int:
        return int((self.state / "run" / f"{self.name}.pid").read_text())

    def start(self) -> None:
        """Start the server (keeping its data) and wait until it answers."""
        self._infra("start")

    def stop(self) -> None:
        """SIGTERM, as an orderly shutdown."""
        self._infra("stop")

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        self._infra("kill")

    def remove(self) -> None:
        self.kill()
        if self.name == "ferretdb":  # and the PostgreSQL it stores in
            self._infra("stop", "postgres")
        shutil.rmtree(self.state, ignore_errors=True)

    def log(self) -> str:
        path = self.state / "log" / f"{self.name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def _infra(self, command: str, name: str | None = None) -> None:
        env = {**os.environ, "TASKMILL_STATE": str(self.state),
               **{var: str(port) for var, port in self.ports.items()}}
        name = name or self.name
        done = subprocess.run([str(INFRA), command, name], env=env, capture_output=True,
                              text=True, timeout=180)
        if done.returncode:
            raise RuntimeError(f"infra.sh {command} {name} failed:\n{done.stderr}\n{self.log()}")
