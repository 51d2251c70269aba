"""The algorithm of service `bbb`: an orders report grouped by country, status or month.

The SQL is fixed text chosen by `group_by`; every value from the condition is a bound
parameter. Nothing is built from strings.
"""

from __future__ import annotations

import re
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

QUERIES = {
    "country": "SELECT c.country AS `key`, COUNT(*) AS orders, SUM(o.amount) AS amount"
               + _FILTERS + "GROUP BY c.country ORDER BY c.country",
    "status": "SELECT o.status AS `key`, COUNT(*) AS orders, SUM(o.amount) AS amount"
              + _FILTERS + "GROUP BY o.status ORDER BY o.status",
    "month": "SELECT DATE_FORMAT(o.created_at, '%%Y-%%m') AS `key`, COUNT(*) AS orders, "
             "SUM(o.amount) AS amount" + _FILTERS + "GROUP BY `key` ORDER BY `key`",
}

FIELDS = {"group_by", "country", "status", "since", "until"}
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def orders_report(condition: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Count and sum orders per group; `{}` is the default report (by country)."""
    params, group_by = _parameters(condition)
    rows = []
    with ctx.source.cursor() as cursor:
        cursor.execute(QUERIES[group_by], params)
        for row in cursor.fetchall():
            if ctx.cancelled:  # cancelled by a client while the query ran
                return {}
            rows.append({"key": row["key"], "orders": int(row["orders"]),
                         "amount": _money(row["amount"])})
    return {"group_by": group_by, "rows": rows,
            "total_orders": sum(r["orders"] for r in rows),
            "total_amount": round(sum(r["amount"] for r in rows), 2)}


def _parameters(condition: dict[str, Any]) -> tuple[dict[str, Any], str]:
    unknown = sorted(set(condition) - FIELDS)
    if unknown:
        raise TaskFailed(f"unknown condition field {unknown[0]!r}; known: {', '.join(sorted(FIELDS))}")
    group_by = condition.get("group_by", "country")
    if group_by not in QUERIES:
        raise TaskFailed(f"group_by must be one of {', '.join(QUERIES)}, not {group_by!r}")
    params = {name: condition.get(name) for name in ("country", "status", "since", "until")}
    for name in ("country", "status"):
        if params[name] is not None and not isinstance(params[name], str):
            raise TaskFailed(f"{name} must be a string")
    for name in ("since", "until"):
        if params[name] is not None:
            params[name] = _date(name, params[name])
    return params, group_by


def _date(name: str, value: Any) -> date:
    try:
        if isinstance(value, str) and DATE.match(value):
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise TaskFailed(f"{name} must be a date YYYY-MM-DD, not {value!r}")


def _money(value: Decimal | None) -> float:
    return float(value or 0)
