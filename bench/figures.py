"""Figures every benchmark prints and saves: repeated timings, percentiles, tables, JSON."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def timed_ms(call: Callable[[], Any], repeat: int) -> dict[str, float]:
    """Run call `repeat` times; median, p99, min and max in milliseconds."""
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return {"p50_ms": statistics.median(times), "p99_ms": percentile(times, 99),
            "min_ms": min(times), "max_ms": max(times)}


def table(title: str, rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of rows (a key a row lacks is shown as `-`)."""
    if not rows:
        return f"{title}: no rows"
    keys = list(dict.fromkeys(k for row in rows for k in row))
    cells = [[_cell(row.get(k)) for k in keys] for row in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    line = "  ".join(k.rjust(w) for k, w in zip(keys, widths, strict=True))
    body = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join([title, line, "-" * len(line), *body])


def save(name: str, figures: dict[str, Any]) -> Path:
    """Write the figures with the machine they were taken on to bench/results/NAME.json."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    machine = {"python": platform.python_version(), "machine": platform.machine(),
               "cpus": _cpus(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path.write_text(json.dumps({"machine": machine, **figures}, indent=2, default=str))
    return path


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 100 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
