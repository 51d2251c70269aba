"""The WSGI entry point for gunicorn: `taskmill_api.wsgi:app`."""

from __future__ import annotations

import logging

from taskmill.config import load_config
from taskmill.errors import DependencyUnavailable
from taskmill.logs import setup_logging
from taskmill.store import TaskStore
from taskmill_api.app import create_app

setup_logging("api")
_config = load_config()
if not _config.auth_token:
    raise SystemExit("AUTH_TOKEN is not set: the api refuses to start without a token")
_store = TaskStore.open(_config, appname="taskmill-api")
try:
    _store.ensure_indexes()
except DependencyUnavailable as ex:  # the dispatcher creates them too; /readyz tells
    logging.getLogger(__name__).warning("indexes not ensured at start-up: %s", ex)

app = create_app(_config, _store)
