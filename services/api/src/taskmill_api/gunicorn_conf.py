"""gunicorn settings: `gunicorn -c python:taskmill_api.gunicorn_conf taskmill_api.wsgi:app`.

Bind address, workers and threads come from the environment (API_BIND, WEB_CONCURRENCY,
GUNICORN_THREADS); PROMETHEUS_MULTIPROC_DIR makes /metrics add up all workers; the
workers share the tokens' rate limits through a file named for the master. On SIGTERM
the workers finish the requests in hand within the config's lifecycle.shutdown_grace_s.
Each answer leaves in one packet: `pre_request` corks the connection, `post_request`
uncorks it. On a TCP address each worker listens on a socket of its own (`reuse_port`),
so that the kernel spreads new connections over the workers.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from typing import Any

from gunicorn.util import parse_address

from taskmill.config import load_config
from taskmill_api.rate_limits import instance_path

bind = os.environ.get("API_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
graceful_timeout = max(1, round(load_config().lifecycle.shutdown_grace_s))
timeout = 60
keepalive = 5
accesslog = None
errorlog = "-"
# No control socket (gunicornc): nothing here uses it, and by default it is made under
# $HOME, which a read-only image cannot write ("Control server error: [Errno 30]") and
# which every instance on one machine would share.
control_socket_disable = True
# Each worker binds the address itself with SO_REUSEPORT, and the kernel spreads new
# connections over their sockets. On one shared socket the worker that wakes first accepts
# whatever is waiting, and keep-alive connections stay where they were accepted: measured,
# 32 clients connecting at once all went to one of the two workers in 5 runs of 6 (8 in 2
# of the 3 trivial-route runs of one `make bench`), served on one core at about 0.4 of the
# rate of the runs they were spread in. Not for a Unix socket (each worker would replace
# the last one's file).
reuse_port = not bind.startswith(("unix:", "fd://"))


def on_starting(server: Any) -> None:
    """Refuse an address in use, empty the multiprocess metrics folder (stale files would
    add old counts) and start the rate limits' buckets afresh."""
    if reuse_port:
        _refuse_taken(bind)
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        Path(folder).mkdir(parents=True, exist_ok=True)
    instance_path(os.getpid()).unlink(missing_ok=True)


def when_ready(server: Any) -> None:
    """Say where the workers listen: under `reuse_port` gunicorn's own line names no
    address (its master holds no socket)."""
    if reuse_port:
        server.log.info("Workers listen at: %s", bind)


def _refuse_taken(address: str) -> None:
    """Exit unless the address is free. Under `reuse_port` the workers bind it, not the
    master: a socket held without SO_REUSEPORT would make them fail to boot one after the
    other while the master stays up, and one held with it (another api started on the same
    port) would be shared with them silently."""
    host, port = parse_address(address)
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        socket.create_server((host, port), family=family).close()
    except OSError as error:
        raise SystemExit(f"cannot listen on {address}: {error}") from None


def pre_request(worker: Any, req: Any) -> None:
    """Hold the answer's bytes until it is whole (`post_request` lets them go): gunicorn
    writes the headers and the body in two sends, and each one sent alone is a packet the
    client wakes up for. Not for a request that expects `100 Continue` (gunicorn sends it
    before the body is read, and the client waits for it)."""
    if not any(name == "EXPECT" for name, _ in req.headers):
        _cork(req, True)


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    """Send the answer held since `pre_request` (in one packet, when it fits in one)."""
    _cork(req, False)


def _cork(req: Any, on: bool) -> None:
    """Set TCP_CORK on the request's connection (a Unix socket has none: left alone). Linux
    sends what a corked socket holds when it is uncorked, closed, or after 200 ms."""
    sock = getattr(getattr(req, "unreader", None), "sock", None)
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, int(on))
    except OSError:  # the connection is gone: nothing to send
        pass


def on_exit(server: Any) -> None:
    """Remove the rate limits' buckets of this instance."""
    instance_path(os.getpid()).unlink(missing_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges from the aggregate."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
