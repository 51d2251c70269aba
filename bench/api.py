"""api: requests per second and latency of the busiest routes at 1, 8 and 32 clients, next
to the same gunicorn setup answering a trivial Falcon route (the ceiling).

    uv run python -m bench.api [--clients 1,8,32] [--duration 5] [--repeat 3]

Load comes from bench/load.py in a process of its own. Routes run in this order: the
ceiling, status_task (10 ids), tasks (page 1, filtered), create_task — create last because
it grows the store the other two read, and the tasks it made are deleted after each
level so that every level reads a store of the same size (10 tasks). It creates tasks of
another service than the list reads: on the local engine a deleted task stays in the
indexes until PostgreSQL vacuums it, and thousands of them just in front of the listed
page made each list walk past them (4 ms of PostgreSQL per page at the next level, 10 ms
at the one after; measured).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import urllib.request
from functools import partial

from bench import stack
from bench.figures import save, table
from bench.profile import cpu_spent, store_pids
from tests.servers import free_port
from tests.system import TOKEN, gunicorn, wait_until


def load(url: str, body: object, clients: int, duration: float) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-m", "bench.load", "--url", url, "--body", json.dumps(body),
                           "--token", TOKEN, "--concurrency", str(clients), "--duration", str(duration)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def loads(url: str, body: object, clients: int, args: argparse.Namespace) -> list[dict[str, float]]:
    """`args.repeat` loads of `args.duration` seconds each."""
    return [load(url, body, clients, args.duration) for _ in range(args.repeat)]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=b"{}"), timeout=1):
            return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.api")
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with stack.system() as (system, collection):
        system.stop("dispatcher")  # the api alone
        ids = [system.api.create_task("aaa", {"n": i}) for i in range(10)]
        port = free_port()
        system.start("ceiling", *gunicorn("bench.ceiling:app"), env={"API_BIND": f"127.0.0.1:{port}"})
        ceiling = f"http://127.0.0.1:{port}/ok"
        wait_until("the ceiling app answers", lambda: answers(ceiling), 30)
        api = f"http://127.0.0.1:{system.api_port}/api"
        watched = {"api": system.procs["api"].pid, "ceiling": system.procs["ceiling"].pid,
                   **store_pids()}
        cases = [
            ("ceiling (trivial route)", ceiling, {}),
            ("status_task, 10 ids", f"{api}/status_task", {"data": [{"task_id": t} for t in ids]}),
            ("tasks, page 1 filtered", f"{api}/tasks", {"p_size": 20, "page": 1, "service": "aaa",
                                                        "status": "ready"}),
            ("create_task", f"{api}/create_task", {"data": {"service": "bbb", "condition": {}}}),
        ]
        for clients in (int(c) for c in args.clients.split(",")):
            ceiling_rps = None
            for name, url, body in cases:
                runs, _, spent = cpu_spent(watched, partial(loads, url, body, clients, args))
                served = sum(r["requests"] for r in runs)
                cpu = {f"{name}_cpu_us": round(seconds * 1e6 / served)
                       for name, seconds in spent.items() if seconds > 0}
                rps = [r["rps"] for r in runs]
                ceiling_rps = ceiling_rps or statistics.median(rps)
                rows.append({"route": name, "clients": clients, "rps": statistics.median(rps),
                             "min": min(rps), "max": max(rps),
                             "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                             "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                             "errors": sum(r["errors"] for r in runs),
                             "of_ceiling": statistics.median(rps) / ceiling_rps, **cpu})
                print(rows[-1], flush=True)
            collection.delete_many({"task_id": {"$nin": ids}})
    print(table(f"api under load, 10 tasks in the store (median of {args.repeat} runs)", rows))
    print(f"figures: {save('api', {'repeat': args.repeat, 'duration_s': args.duration, 'rows': rows})}")


if __name__ == "__main__":
    main()
