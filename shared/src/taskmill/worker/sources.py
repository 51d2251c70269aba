"""The data sources algorithms read, by `source_name`, opened once per worker process."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pymongo
import pymysql

from taskmill.config import SourcesConfig


class Sources:
    """Opens the named source on first use and keeps it for the next tasks."""

    def __init__(self, config: SourcesConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._mongo: pymongo.MongoClient[Any] | None = None
        self._mysql: pymysql.connections.Connection[Any] | None = None

    def get(self, source_name: str) -> Any:
        """Return the source: a pymongo Database for `mongo`, a PyMySQL connection for `mysql`."""
        with self._lock:
            if source_name == "mongo":
                return self._mongo_db()
            if source_name == "mysql":
                return self._mysql_conn()
        raise LookupError(f"unknown data source {source_name!r}; known: mongo, mysql")

    def close(self) -> None:
        """Close whatever was opened."""
        with self._lock:
            if self._mongo is not None:
                self._mongo.close()
                self._mongo = None
            if self._mysql is not None:
                self._mysql.close()
                self._mysql = None

    def _mongo_db(self) -> Any:
        if self._mongo is None:
            self._mongo = pymongo.MongoClient(self._config.mongo_uri, appname="taskmill-worker",
                                              serverSelectionTimeoutMS=5000, tz_aware=True)
        return self._mongo[self._config.mongo_dbname]

    def _mysql_conn(self) -> Any:
        if self._mysql is not None:
            try:
                self._mysql.ping()
                return self._mysql
            except pymysql.err.Error:  # dropped since the last task: open a new one
                with contextlib.suppress(pymysql.err.Error):
                    self._mysql.close()
        c = self._config
        self._mysql = pymysql.connect(host=c.mysql_host, port=c.mysql_port, user=c.mysql_user,
                                      password=c.mysql_password, database=c.mysql_database,
                                      connect_timeout=5, read_timeout=300, autocommit=True,
                                      cursorclass=pymysql.cursors.DictCursor)
        return self._mysql
