"""The WSGI entry point for gunicorn: `taskmill_api.wsgi:app`."""

from __future__ import annotations

import atexit
import logging
import os

from taskmill.config import load_config
from taskmill.errors import DependencyUnavailable
from taskmill.logs import setup_logging
from taskmill.store import TaskStore
from taskmill_api.app import create_app
from taskmill_api.rate_limits import RateLimits, instance_path

setup_logging("api")
_config = load_config()
if not _config.tokens:
    raise SystemExit("no token is configured (AUTH_TOKEN, or named tokens in taskmill.tokens / "
                     "TASKMILL_TOKENS_FILE): the api refuses to start without one")
logging.getLogger(__name__).info("tokens: %s", ", ".join(
    f"{t.name} ({t.role.value})" for t in _config.tokens))
_store = TaskStore.open(_config, appname="taskmill-api")
atexit.register(_store.close)  # writes the count moves still gathered (TaskCounts)
try:
    _store.ensure_indexes()
except DependencyUnavailable as ex:  # the dispatcher creates them too; /readyz tells
    logging.getLogger(__name__).warning("indexes not ensured at start-up: %s", ex)

# Under gunicorn the parent is the master: its workers share the rate limits' buckets.
app = create_app(_config, _store, RateLimits(_config.tokens, instance_path(os.getppid())))
