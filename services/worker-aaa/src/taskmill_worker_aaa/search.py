"""The algorithm of service `aaa`: equality search over the sample users."""

from __future__ import annotations

from typing import Any

from taskmill.worker import TaskContext, TaskFailed

SCALARS = (str, int, float, bool, type(None))


def search_users(condition: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Return the users matching every field of the condition, at most `limit` of them.

    `{}` matches all users. `total` counts every match, `users` holds the page.
    """
    filters = dict(condition)
    limit = filters.pop("limit", None)
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise TaskFailed(f"limit must be a positive integer, not {limit!r}")
    for field, value in filters.items():
        if field.startswith("$") or "." in field:
            raise TaskFailed(f"condition field {field!r} is not a plain field name")
        if not isinstance(value, SCALARS):
            raise TaskFailed(f"condition field {field!r} must be a string, number, boolean or "
                             f"null, not {type(value).__name__}")
    users = ctx.source["users"]
    total = users.count_documents(filters)
    cursor = users.find(filters, {"_id": 0}).sort("user_id", 1)
    if limit is not None:
        cursor = cursor.limit(limit)
    found = []
    for user in cursor:
        if ctx.cancelled:  # cancelled by a client: the rest would be thrown away
            cursor.close()
            return {}
        found.append(user)
    return {"total": total, "users": found}
