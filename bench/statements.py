"""What PostgreSQL ran for the local task store during a run: pg_stat_statements (loaded by
the store's settings, infra/documentdb/postgresql.conf.in), read with `scripts/infra.sh psql`.

FerretDB sends each MongoDB command as one SQL call of DocumentDB's (`documentdb_api.update`,
`insert`, `find_cursor_first_page`, …); the statements DocumentDB runs inside it (a row's
read, its UPDATE) are counted too, as `inside`: a command's time includes theirs. Times are
PostgreSQL's own wall time executing (lock waits included), not CPU.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from tests.helpers import ROOT

TOP = 10
STATEMENTS = f"""
SELECT coalesce(json_agg(s), '[]') FROM (
  SELECT toplevel, calls, rows, total_exec_time AS ms,
         left(regexp_replace(query, '\\s+', ' ', 'g'), 110) AS statement
  FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT {TOP}) s"""


def _psql(sql: str) -> str | None:
    """The query's output, or None where the store's PostgreSQL or its statistics are not
    there to ask (a server started before they were loaded: restart it)."""
    try:
        done = subprocess.run([str(ROOT / "scripts" / "infra.sh"), "psql", "-c", sql],
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):  # a server that does not answer
        return None
    return done.stdout if done.returncode == 0 else None


def reset() -> bool:
    """Forget what was counted so far; False where nothing is counted."""
    return _psql("SELECT pg_stat_statements_reset()") is not None


def per_task(tasks: int) -> list[dict[str, Any]]:
    """The statements that took PostgreSQL longest since `reset`, per task of the run."""
    found = _psql(STATEMENTS)
    if found is None:
        return []
    return [{"level": "command" if s["toplevel"] else "inside",
             "calls_a_task": round(s["calls"] / tasks, 2), "rows_a_task": round(s["rows"] / tasks, 2),
             "us_a_task": round(s["ms"] * 1000 / tasks), "us_a_call": round(s["ms"] * 1000 / s["calls"]),
             "statement": s["statement"]} for s in json.loads(found)]
