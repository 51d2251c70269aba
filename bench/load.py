"""A small asyncio HTTP/1.1 load generator, run as its own process by the benchmarks.

    python -m bench.load --url http://127.0.0.1:8000/api/status_task --body '{"data": ...}' \
        --token T --concurrency 8 --duration 5

Each of `concurrency` connections sends POSTs back to back over keep-alive for `duration`
seconds; prints one JSON line: requests, errors, requests per second, latency p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from urllib.parse import urlsplit

from bench.figures import percentile


async def client(host: str, port: int, request: bytes, until: float, latencies: list[float],
                 errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < until:
            began = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - began)
            if not status_line.split(b" ")[1].startswith(b"2"):
                errors.append(int(status_line.split(b" ")[1]))
    finally:
        writer.close()


async def run(url: str, body: bytes, token: str, concurrency: int, duration: float) -> dict[str, float]:
    parts = urlsplit(url)
    request = (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: {token}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    latencies: list[float] = []
    errors: list[int] = []
    began = time.perf_counter()
    until = began + duration
    await asyncio.gather(*(client(parts.hostname or "127.0.0.1", parts.port or 80, request, until,
                                  latencies, errors) for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    return {"requests": len(latencies), "errors": len(errors), "rps": len(latencies) / elapsed,
            "p50_ms": statistics.median(latencies) * 1000, "p99_ms": percentile(latencies, 99) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.load")
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", default="{}")
    parser.add_argument("--token", default="")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    figures = asyncio.run(run(args.url, args.body.encode(), args.token, args.concurrency, args.duration))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
