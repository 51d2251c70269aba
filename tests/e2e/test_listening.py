"""How the api's gunicorn listens: clients that connect at once are spread over its
workers (each worker has a socket of its own), and an api started on an address in use
exits saying so instead of sharing it or retrying forever."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.system import System, gunicorn

pytestmark = pytest.mark.e2e

ESTABLISHED, LISTEN = "01", "0A"


def children(parent: int) -> set[int]:
    """The pids of the processes whose parent is `parent`."""
    return {int(pid) for pid in Path(f"/proc/{parent}/task/{parent}/children").read_text().split()}


def sockets_of(pids: set[int], port: int, state: str) -> list[tuple[int, int]]:
    """The IPv4 TCP sockets of the local port in this state (by /proc/net/tcp's state code)
    that these processes hold: (remote port, pid) of each."""
    inodes = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == state:
            inodes[f"socket:[{fields[9]}]"] = int(fields[2].split(":")[1], 16)
    held = []
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                target = fd.readlink()
            except OSError:
                continue
            if str(target) in inodes:
                held.append((inodes[str(target)], pid))
    return held


def listening_workers(system: System) -> set[int]:
    """The api's workers that hold a listening socket of the api's port."""
    workers = children(system.procs["api"].pid)
    return {pid for _, pid in sockets_of(workers, system.api_port, LISTEN)}


def test_clients_connecting_at_once_are_spread_over_the_api_workers(start_system):
    system = start_system(workers=())
    system.wait_until("both api workers listen", lambda: len(listening_workers(system)) == 2)
    workers = listening_workers(system)
    clients = [socket.create_connection(("127.0.0.1", system.api_port), timeout=10) for _ in range(32)]
    try:
        for conn in clients:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: api\r\n\r\n")
        for conn in clients:
            assert conn.recv(65536).startswith(b"HTTP/1.1 200 OK")
        by_client = dict(sockets_of(workers, system.api_port, ESTABLISHED))
        holders = [by_client[conn.getsockname()[1]] for conn in clients]
    finally:
        for conn in clients:
            conn.close()
    # Each connection is a coin toss between two sockets: all 32 on one is a 2^-31 chance.
    assert set(holders) == workers, f"connections per worker: {[holders.count(w) for w in workers]}"


def test_an_api_started_on_an_address_in_use_exits_saying_so(start_system):
    system = start_system(workers=())
    second = system.start("api-second", *gunicorn("taskmill_api.wsgi:app"))
    assert second.wait(30) != 0
    log = system.log_path("api-second").read_text()
    assert f"cannot listen on 127.0.0.1:{system.api_port}: [Errno 98] Address already in use" in log
    assert "Booting worker" not in log
    assert system.api.tasks()["total"] == 0  # the first api answers on
