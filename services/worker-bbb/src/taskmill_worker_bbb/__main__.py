"""Run worker-bbb: `python -m taskmill_worker_bbb [--metrics-port N]`."""

from __future__ import annotations

from taskmill.worker import serve
from taskmill_worker_bbb.report import orders_report


def main() -> None:
    """Serve service `bbb` until SIGTERM."""
    serve("bbb", orders_report)


if __name__ == "__main__":
    main()
