"""Fixtures every test folder shares: the real infrastructure, per-test databases and topics.

The addresses come from the environment that `scripts/test.sh` sets (or that you set to
reuse a running stack: KAFKA_BOOTSTRAP_SERVERS, MONGO_URI, SOURCE_MYSQL_*). When a
service cannot be reached the test is skipped locally and fails under CI=true.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pymongo
import pytest

from taskmill.config import Config, load_config
from tests.helpers import unavailable, write_config
from tests.servers import PrivateServer, Servers

# The `start_system` fixture: a whole Taskmill as real processes (e2e and fault tests).
pytest_plugins = ["tests.system"]

# The shared servers, from the environment scripts/test.sh sets (or yours).
SHARED = Servers.from_env()


@pytest.fixture(scope="session")
def kafka_servers() -> str:
    """The bootstrap servers of a reachable Kafka."""
    from confluent_kafka.admin import AdminClient

    servers = SHARED.kafka
    try:
        AdminClient({"bootstrap.servers": servers}).list_topics(timeout=5)
    except Exception as ex:  # noqa: BLE001 - any failure means "not reachable"
        unavailable(f"Kafka at {servers}", ex)
    return servers


@pytest.fixture(scope="session")
def mongo_uri() -> str:
    """The URI of a reachable MongoDB-protocol server (FerretDB locally)."""
    uri = SHARED.mongo
    try:
        with pymongo.MongoClient(uri, serverSelectionTimeoutMS=3000) as client:
            client.admin.command("ping")
    except pymongo.errors.PyMongoError as ex:
        unavailable(f"MongoDB at {uri}", ex)
    return uri


@pytest.fixture(scope="session")
def mysql_settings() -> dict[str, Any]:
    """Connection settings of the MariaDB sample source, checked to answer."""
    import pymysql

    settings = dict(SHARED.mysql)
    try:
        pymysql.connect(connect_timeout=3, **settings).close()
    except pymysql.err.MySQLError as ex:
        unavailable(f"MariaDB at {settings['host']}:{settings['port']}", ex)
    return settings


@pytest.fixture(scope="session")
def browser() -> None:
    """Chromium and ChromeDriver are installed (the dashboard's tests drive them)."""
    from tests.browser import installed

    missing = installed()
    if missing:
        unavailable("a browser", missing, "install it with scripts/infra.sh install")


@pytest.fixture(scope="session")
def mysql_admin_socket() -> str:
    """The Unix socket where root administers the MariaDB of scripts/infra.sh."""
    socket = os.environ.get("TASKMILL_MARIADB_SOCKET", "")
    if not socket or not Path(socket).exists():
        unavailable(f"MariaDB's admin socket {socket!r}")
    return socket


@pytest.fixture
def empty_mysql_database(mysql_settings: dict[str, Any], mysql_admin_socket: str,
                         unique: str) -> Iterator[str]:
    """A new MariaDB database the source user owns (as MYSQL_DATABASE in the mysql image);
    the shared one is read-only to that user."""
    name = f"seed_{unique}"
    import pymysql

    with pymysql.connect(unix_socket=mysql_admin_socket, user="root", autocommit=True) as admin:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")
            cursor.execute(f"GRANT ALL ON {name}.* TO %s@%s",
                           (mysql_settings["user"], mysql_settings["host"]))
        try:
            yield name
        finally:
            with admin.cursor() as cursor:
                cursor.execute(f"DROP DATABASE {name}")


@pytest.fixture(scope="session")
def vacuum(mongo_uri: str) -> Callable[[], None]:
    """VACUUM the local engine's PostgreSQL (what its autovacuum does in its own time), or
    nothing on a MongoDB server, which has no such thing."""
    socket = os.environ.get("TASKMILL_POSTGRES_SOCKET", "")
    if not socket:
        return lambda: None
    psql = "/usr/lib/postgresql/15/bin/psql"

    def run() -> None:
        subprocess.run([psql, "-h", socket, "-U", "postgres", "-d", "postgres", "-qAtc", "VACUUM"],
                       check=True, capture_output=True, timeout=120)
    return run


@pytest.fixture
def unique() -> str:
    """A short unique suffix for names this test owns."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def task_db(mongo_uri: str, unique: str) -> Iterator[str]:
    """A task database of this test's own, dropped afterwards."""
    name = f"t_{unique}"
    yield name
    with pymongo.MongoClient(mongo_uri, serverSelectionTimeoutMS=3000) as client:
        client.drop_database(name)


@pytest.fixture
def make_config(tmp_path: Path, mongo_uri: str, task_db: str) -> Any:
    """Build a Config pointing at this test's database (and optional Kafka/topics)."""
    def build(services: Mapping[str, Mapping[str, str]] | None = None,
              env: Mapping[str, str] | None = None, **extra: Any) -> Config:
        path = write_config(tmp_path / "config.yaml", services, extra)
        environ = {"AUTH_TOKEN": "test-token", "MONGO_URI": mongo_uri, "MONGO_DBNAME": task_db,
                   **(env or {})}
        return load_config(path, environ)
    return build


@pytest.fixture
def private_server() -> Iterator[Callable[[str], PrivateServer]]:
    """Start private servers ("kafka", "ferretdb") that this test may stop, kill and restart."""
    servers: list[PrivateServer] = []

    def start(name: str) -> PrivateServer:
        server = PrivateServer.create(name)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.remove()
