"""Run worker-aaa: `python -m taskmill_worker_aaa [--metrics-port N]`."""

from __future__ import annotations

from taskmill.worker import serve
from taskmill_worker_aaa.search import search_users


def main() -> None:
    """Serve service `aaa` until SIGTERM."""
    serve("aaa", search_users)


if __name__ == "__main__":
    main()
