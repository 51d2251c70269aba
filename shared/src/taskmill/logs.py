"""Structured logs: one JSON line per event, on stderr."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from typing import Any

from taskmill.schema import iso

# Attributes a caller may attach with `extra=` that belong in the JSON line.
CONTEXT_FIELDS = ("task_id", "service", "attempt", "request_id", "route", "status", "token")

# A message (which may quote a task's condition or an algorithm's error) is cut here.
MAX_MESSAGE_CHARS = 2000
# A traceback keeps its first and last lines (where it began; what was raised) within this.
MAX_TRACEBACK_CHARS = 8000


def task_fields(task: Mapping[str, Any]) -> dict[str, Any]:
    """The `extra=` of a log record about a stored task."""
    return {"task_id": task["task_id"], "service": task["service"], "attempt": task["attempt"]}


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Cut text to limit characters, saying how much was left out."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"


def clip_middle(text: str, limit: int = MAX_TRACEBACK_CHARS) -> str:
    """Cut the middle out of text longer than limit, saying how much."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n… ({len(text) - 2 * half} characters left out) …\n{text[-half:]}"


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object."""

    def __init__(self, process_name: str) -> None:
        super().__init__()
        self._process = process_name

    def format(self, record: logging.LogRecord) -> str:
        from datetime import UTC, datetime

        line: dict[str, Any] = {
            "time": iso(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname.lower(),
            "process": self._process,
            "logger": record.name,
            "message": clip(record.getMessage()),
        }
        for name in CONTEXT_FIELDS:
            if hasattr(record, name):
                line[name] = getattr(record, name)
        if record.exc_info:
            line["traceback"] = clip_middle(self.formatException(record.exc_info))
        return json.dumps(line, default=str, ensure_ascii=False)


def setup_logging(process_name: str, level: int = logging.INFO) -> None:
    """Send every log record to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(process_name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("kafka").setLevel(logging.WARNING)
