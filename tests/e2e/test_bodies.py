"""Request bodies as real HTTP clients send them, through gunicorn."""

from __future__ import annotations

import http.client
import json

import pytest

from tests.system import TOKEN

pytestmark = pytest.mark.e2e


def post_chunked(port: int, route: str, chunks: list[bytes]) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", route, body=iter(chunks), encode_chunked=True,
                     headers={"Authorization": TOKEN, "Content-Type": "application/json",
                              "Transfer-Encoding": "chunked"})
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        conn.close()


def test_a_chunked_body_is_read_like_any_other(start_system):
    """Transfer-Encoding: chunked carries the same request (not an empty one), and past the
    body limit it is a 413."""
    system = start_system(workers=())
    body = json.dumps({"data": {"service": "aaa", "condition": {"city": "Lima"}}}).encode()
    status, answer = post_chunked(system.api_port, "/api/create_task", [body[:10], body[10:]])
    assert status == 200, answer
    assert system.api.result_task(answer["task_id"])["status"] == "ready"
    status, answer = post_chunked(system.api_port, "/api/tasks", [b'{"service": ', b'"bbb"}'])
    assert status == 200 and answer["total"] == 0  # the filter was read: no bbb task
    status, answer = post_chunked(system.api_port, "/api/create_task", [b" " * 65536] * 17)
    assert status == 413 and answer["result"] == "exception"
