import json

import pytest

from taskmill.codec import ATTEMPT_HEADER, TaskMessage, decode
from taskmill.errors import MessageDecodeError

TASK_ID = "ts_aaa_0123456789abcdef0123456789abcdef"


def test_encode_is_byte_for_byte_the_originals_format():
    """The value is the original's JSON and nothing else; the attempt rides in a header."""
    message = TaskMessage(TASK_ID, "aaa", "mongo", {"xx": "xx"}, attempt=2)
    assert message.encode() == (
        b'{"Task": {"task_id": "' + TASK_ID.encode()
        + b'", "service": "aaa", "source_name": "mongo", "condition": {"xx": "xx"}}}')
    assert message.key() == TASK_ID.encode()
    assert message.headers() == [(ATTEMPT_HEADER, b"2")]


def test_non_ascii_conditions_are_utf8():
    """Conditions keep their characters as UTF-8, not \\u escapes."""
    value = TaskMessage(TASK_ID, "aaa", "mongo", {"city": "北京"}).encode()
    assert "北京".encode() in value
    assert decode(value).condition == {"city": "北京"}


def test_decode_round_trips_with_headers():
    """What encode writes, decode reads back, headers included."""
    message = TaskMessage(TASK_ID, "aaa", "mongo", {"a": [1, 2]}, attempt=3, trace_id="abc")
    assert decode(message.encode(), message.headers()) == message


def test_decode_reads_messages_of_original_producers():
    """A message without Taskmill's headers decodes with no attempt."""
    raw = json.dumps({"Task": {"task_id": TASK_ID, "service": "aaa", "source_name": "mongo",
                               "condition": {}}}).encode()
    assert decode(raw).attempt is None


@pytest.mark.parametrize("value, reason", [
    (None, "no value"),
    (b"\xff\xfe", "not UTF-8 JSON"),
    (b"[1]", 'no "Task"'),
    (b'{"Task": {"task_id": 1}}', "task_id must be a string"),
    (b'{"Task": {"task_id": "x", "service": "aaa", "source_name": "m", "condition": {}}}',
     "is not a task id"),
    (f'{{"Task": {{"task_id": "{TASK_ID}", "service": "aaa", "source_name": "m", '
     f'"condition": []}}}}'.encode(), "condition must be an object"),
])
def test_decode_refuses_what_is_not_the_contracts_message(value, reason):
    """Every malformed value is one MessageDecodeError saying why."""
    with pytest.raises(MessageDecodeError, match=reason):
        decode(value)


def test_decode_refuses_a_bad_attempt_header():
    """A non-numeric attempt header is a decode error, not a crash."""
    value = TaskMessage(TASK_ID, "aaa", "mongo", {}).encode()
    with pytest.raises(MessageDecodeError, match="positive integer"):
        decode(value, [(ATTEMPT_HEADER, b"two")])
