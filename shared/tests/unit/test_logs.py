"""Log lines stay one bounded JSON line whatever a request or an algorithm put in them."""

import json
import logging

from taskmill.logs import MAX_MESSAGE_CHARS, MAX_TRACEBACK_CHARS, JsonFormatter


def formatted(message: str, error: Exception | None = None) -> dict:
    exc_info = None
    if error is not None:
        try:
            raise error
        except Exception as raised:
            exc_info = (type(raised), raised, raised.__traceback__)
    record = logging.LogRecord("taskmill.test", logging.ERROR, __file__, 1, "%s", (message,), exc_info)
    record.task_id = "ts_aaa_" + "0" * 32
    line = JsonFormatter("api").format(record)
    assert "\n" not in line
    return json.loads(line)


def test_a_huge_message_is_cut_saying_how_much():
    line = formatted("x" * 1_000_000)
    assert len(line["message"]) < MAX_MESSAGE_CHARS + 100
    assert line["message"].endswith(f"({1_000_000 - MAX_MESSAGE_CHARS} more characters)")
    assert line["task_id"] == "ts_aaa_" + "0" * 32


def test_a_huge_traceback_keeps_where_it_began_and_what_was_raised():
    line = formatted("failed", ValueError("start " + "y" * 500_000 + " end"))
    trace = line["traceback"]
    assert len(trace) < MAX_TRACEBACK_CHARS + 100
    assert trace.startswith("Traceback (most recent call last):")
    assert trace.endswith(" end") and "characters left out" in trace


def test_a_small_traceback_is_whole():
    trace = formatted("failed", KeyError("k"))["traceback"]
    assert trace.startswith("Traceback") and trace.endswith("KeyError: 'k'")
    assert "left out" not in trace
