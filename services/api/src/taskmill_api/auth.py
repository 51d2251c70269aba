"""Who calls and what they may do: the tokens, their roles, and the workers' services.

A request's token is hashed and compared in constant time with every configured token's
hash (no early exit), so how long it takes says nothing of which one came close. Roles
(`taskmill.token_config.Role`): a client calls the clients' routes, a worker reports on
the tasks of its services only and must name the attempt, an admin calls everything.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from taskmill.errors import InvalidParameter
from taskmill.schema import service_of
from taskmill.token_config import Role, TokenConfig
from taskmill_api.errors import Forbidden

CLIENT_ROUTES = frozenset({
    "/api/create_task", "/api/status_task", "/api/result_task", "/api/tasks", "/api/start_task",
    "/api/update_task", "/api/service_task", "/api/service_stats", "/api/cancel_task",
    "/api/openapi.json"})
WORKER_ROUTES = frozenset({"/api/update_status_task", "/api/heartbeat_task"})
ROUTES = {Role.CLIENT: CLIENT_ROUTES, Role.WORKER: WORKER_ROUTES}


@dataclass(frozen=True)
class Caller:
    """The token a request came with."""

    name: str
    role: Role
    services: tuple[str, ...] = ()

    def check_route(self, route: str) -> None:
        """Raise Forbidden unless the role may call this route."""
        if self.role != Role.ADMIN and route not in ROUTES[self.role]:
            raise Forbidden(f"token {self.name} may not call {route.removeprefix('/api/')}: "
                            f"it is a {self.role.value} token")

    def check_report(self, task_id: str, attempt: int | None) -> None:
        """A worker token reports on its services' tasks, naming the attempt."""
        if self.role != Role.WORKER:
            return
        service = service_of(task_id)
        if service not in self.services:
            raise Forbidden(f"token {self.name} may not report on task {task_id}: it reports "
                            f"on tasks of {', '.join(self.services)} only")
        if attempt is None:
            raise InvalidParameter(f"attempt is required with a worker token ({self.name})")


class Tokens:
    """The configured tokens, by hash."""

    def __init__(self, tokens: Sequence[TokenConfig]) -> None:
        if not tokens:
            raise ValueError("the api needs a token: AUTH_TOKEN, or named tokens in "
                             "taskmill.tokens / TASKMILL_TOKENS_FILE")
        self._tokens = [(bytes.fromhex(t.sha256), Caller(t.name, t.role, t.services))
                        for t in tokens]

    def identify(self, given: str) -> Caller | None:
        """The caller whose token this is (None: no configured token)."""
        digest = hashlib.sha256(given.encode()).digest()
        found = None
        for expected, caller in self._tokens:  # every one, whatever matched
            if hmac.compare_digest(digest, expected) and given:
                found = caller
        return found
