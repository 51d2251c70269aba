"""The algorithm of service `bbb`: an orders report grouped by country, status or month.

The SQL is fixed text chosen by `group_by`; every value from the condition is a bound
parameter. Nothing is built from strings.
"""

from __future__ import annotations

import re
import time
from datetime import date
from decimal import Decimal
from typing import Any

from taskmill.worker import TaskContext, TaskFailed

_FILTERS = """
FROM orders o JOIN customers c ON c.id = o.customer_id
WHERE (%(country)s IS NULL OR c.country = %(country)s)
  AND (%(status)s IS NULL OR o.status = %(status)s)
  AND (%(since)s IS NULL OR o.created_at >= %(since)s)
  AND (%(until)s IS NULL OR o.created_at < %(until)s)
"""

# Each grouping's key as SQL (fixed text, never built from a condition).
KEYS = {"country": "c.country", "status": "o.status",
        "month": "DATE_FORMAT(o.created_at, '%%Y-%%m')"}
QUERIES = {group_by: f"SELECT {key} AS `key`, COUNT(*) AS orders, SUM(o.amount) AS amount"
                     f"{_FILTERS}GROUP BY `key` ORDER BY `key`" for group_by, key in KEYS.items()}
# Paced: the groups' keys first, then one group per query (`key` bound).
GROUP_KEYS = {group_by: f"SELECT DISTINCT {key} AS `key`{_FILTERS}ORDER BY `key`"
              for group_by, key in KEYS.items()}
ONE_GROUP = {group_by: f"SELECT {key} AS `key`, COUNT(*) AS orders, SUM(o.amount) AS amount"
                       f"{_FILTERS}  AND {key} = %(key)s GROUP BY `key`" for group_by, key in KEYS.items()}
MAX_PAUSE_S = 60.0

FIELDS = {"group_by", "country", "status", "since", "until", "pause_s"}
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def orders_report(condition: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Count and sum orders per group; `{}` is the default report (by country).

    With `pause_s` the report spares a busy database: one query per group, a pause between
    them, and its progress reported after each (a long report a client can watch).
    """
    params, group_by, pause_s = _parameters(condition)
    with ctx.source.cursor() as cursor:
        if pause_s is None:
            cursor.execute(QUERIES[group_by], params)
            found = cursor.fetchall()
        else:
            found = _paced(cursor, group_by, params, pause_s, ctx)
    if ctx.cancelled:  # cancelled by a client while the queries ran
        return {}
    rows = [{"key": row["key"], "orders": int(row["orders"]), "amount": _money(row["amount"])}
            for row in found]
    return {"group_by": group_by, "rows": rows,
            "total_orders": sum(r["orders"] for r in rows),
            "total_amount": round(sum(r["amount"] for r in rows), 2)}


def _paced(cursor: Any, group_by: str, params: dict[str, Any], pause_s: float,
           ctx: TaskContext) -> list[dict[str, Any]]:
    cursor.execute(GROUP_KEYS[group_by], params)
    keys = [row["key"] for row in cursor.fetchall()]
    found = []
    for n, key in enumerate(keys, 1):
        cursor.execute(ONE_GROUP[group_by], {**params, "key": key})
        found += cursor.fetchall()
        ctx.progress(n / len(keys), f"{n} of {len(keys)} groups")  # raises once cancelled
        if n < len(keys):
            time.sleep(pause_s)
    return found


def _parameters(condition: dict[str, Any]) -> tuple[dict[str, Any], str, float | None]:
    unknown = sorted(set(condition) - FIELDS)
    if unknown:
        raise TaskFailed(f"unknown condition field {unknown[0]!r}; known: {', '.join(sorted(FIELDS))}")
    group_by = condition.get("group_by", "country")
    if group_by not in QUERIES:
        raise TaskFailed(f"group_by must be one of {', '.join(QUERIES)}, not {group_by!r}")
    pause_s = condition.get("pause_s")
    if pause_s is not None and (isinstance(pause_s, bool) or not isinstance(pause_s, int | float)
                                or not 0 <= pause_s <= MAX_PAUSE_S):
        raise TaskFailed(f"pause_s must be a number of seconds from 0 to {MAX_PAUSE_S:g}")
    params = {name: condition.get(name) for name in ("country", "status", "since", "until")}
    for name in ("country", "status"):
        if params[name] is not None and not isinstance(params[name], str):
            raise TaskFailed(f"{name} must be a string")
    for name in ("since", "until"):
        if params[name] is not None:
            params[name] = _date(name, params[name])
    return params, group_by, None if pause_s is None else float(pause_s)


def _date(name: str, value: Any) -> date:
    try:
        if isinstance(value, str) and DATE.match(value):
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise TaskFailed(f"{name} must be a date YYYY-MM-DD, not {value!r}")


def _money(value: Decimal | None) -> float:
    return float(value or 0)
