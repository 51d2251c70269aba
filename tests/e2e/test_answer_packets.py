"""What a client of the api receives on the wire, through gunicorn: each answer in one
packet (its headers and body together, so the client wakes once for it), and
`100 Continue` for a request that asks for it before sending its body."""

from __future__ import annotations

import json
import socket

import pytest

from tests.system import TOKEN

pytestmark = pytest.mark.e2e


def head(route: str, body: bytes, *extra: str) -> bytes:
    lines = [f"POST {route} HTTP/1.1", "Host: api", f"Authorization: {TOKEN}",
             "Content-Type: application/json", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def split(answer: bytes) -> tuple[bytes, int, bytes]:
    """The status line, the Content-Length and the body bytes of an answer as received."""
    headers, _, body = answer.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in headers.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    return headers.split(b"\r\n")[0], length, body


def read_answer(conn: socket.socket) -> tuple[bytes, bytes]:
    """One whole answer, however many reads it takes: its status line and its body."""
    answer = b""
    while True:
        chunk = conn.recv(65536)
        assert chunk, f"the api closed the connection after {answer!r}"
        answer += chunk
        if b"\r\n\r\n" in answer:
            status, length, body = split(answer)
            if len(body) >= length:
                return status, body


def test_each_answer_arrives_whole_in_one_read(start_system):
    """On one keep-alive connection, the first read after each request holds the whole
    answer: headers and body were sent as one packet (gunicorn writes them separately)."""
    system = start_system(workers=())
    task_id = system.api.create_task("aaa", {"city": "Lima"})
    requests = [("/api/status_task", {"data": [{"task_id": task_id}]}),
                ("/api/create_task", {"data": {"service": "aaa", "condition": {}}}),
                ("/api/tasks", {"p_size": 20})]
    with socket.create_connection(("127.0.0.1", system.api_port), timeout=10) as conn:
        for route, payload in requests * 10:
            body = json.dumps(payload).encode()
            conn.sendall(head(route, body) + body)
            status, length, received = split(conn.recv(65536))
            assert status == b"HTTP/1.1 200 OK"
            assert len(received) == length, f"{route}: {len(received)} of {length} body bytes"
            assert json.loads(received)["result"] == "ok"


def test_a_client_expecting_100_continue_gets_it_before_it_sends_the_body(start_system):
    system = start_system(workers=())
    body = json.dumps({"data": {"service": "aaa", "condition": {}}}).encode()
    with socket.create_connection(("127.0.0.1", system.api_port), timeout=10) as conn:
        conn.sendall(head("/api/create_task", body, "Expect: 100-continue"))
        assert conn.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        conn.sendall(body)
        status, received = read_answer(conn)
        assert status == b"HTTP/1.1 200 OK" and json.loads(received)["task_id"].startswith("ts_aaa_")
