"""gunicorn's request hooks cork a TCP connection while an answer is written, so that its
headers and body leave together, and uncork it at the end; a request that expects
`100 Continue` is left alone (gunicorn sends that before the body, and the client waits
for it). Tried on real loopback sockets; gunicorn's own request is stood in for by what
the hooks read of it (its socket reader and its headers)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from taskmill_api import gunicorn_conf


@pytest.fixture
def connection() -> Iterator[socket.socket]:
    """The server's end of a loopback TCP connection."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        yield server
        server.close()
        client.close()


def request(sock: socket.socket, *headers: tuple[str, str]) -> SimpleNamespace:
    return SimpleNamespace(unreader=SimpleNamespace(sock=sock), headers=list(headers))


def corked(sock: socket.socket) -> bool:
    return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK))


def test_an_answer_is_corked_from_the_request_to_its_end(connection):
    req = request(connection, ("CONTENT-TYPE", "application/json"))
    gunicorn_conf.pre_request(None, req)
    assert corked(connection)
    gunicorn_conf.post_request(None, req, {}, None)
    assert not corked(connection)


def test_a_request_expecting_100_continue_is_not_corked(connection):
    gunicorn_conf.pre_request(None, request(connection, ("EXPECT", "100-continue")))
    assert not corked(connection)


def test_a_unix_socket_or_a_closed_connection_is_left_alone(connection):
    left, right = socket.socketpair()
    with left, right:
        gunicorn_conf.pre_request(None, request(left))
        gunicorn_conf.post_request(None, request(left), {}, None)
    connection.close()
    gunicorn_conf.pre_request(None, request(connection))  # no error: nothing to send
    gunicorn_conf.post_request(None, request(connection), {}, None)
