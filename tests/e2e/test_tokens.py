"""Least privilege on the whole system: named tokens with roles, a worker that reports with
its own token, the forge a client token could once do refused, every role against every
route, a burst over a token's rate answered 429 by the api instance as a whole (two
gunicorn workers), and an audit line for every change, naming the token, never its value.
(AUTH_TOKEN alone, the original's single token, is what every other e2e test runs on.)"""

from __future__ import annotations

import http.client
import json
import secrets
import time
from collections.abc import Callable, Iterator
from email.message import Message
from typing import Any

import pytest

from taskmill.client import ApiClient
from taskmill.errors import ApiError
from taskmill.token_config import digest
from taskmill_api.app import ROUTES
from tests.system import TOKEN, System, metric_value, scrape

pytestmark = pytest.mark.e2e

ROLES = {"client": {"role": "client"},
         "limited": {"role": "client", "rate_per_s": 2, "burst": 3},
         "worker-slow": {"role": "worker", "services": ["slow"]},
         "worker-aaa": {"role": "worker", "services": ["aaa"]},
         "ops": {"role": "admin"}}
CLIENT_ROUTES = set(ROUTES) - {"/api/update_status_task", "/api/heartbeat_task"}
ALLOWED = {"client": CLIENT_ROUTES, "worker-slow": {"/api/update_status_task", "/api/heartbeat_task"},
           "ops": set(ROUTES), "AUTH_TOKEN": set(ROUTES)}


@pytest.fixture
def tokens() -> dict[str, str]:
    return {name: secrets.token_hex(16) for name in ROLES}


@pytest.fixture
def system(start_system, tokens) -> System:
    settings = {"tokens": [{"name": name, "sha256": digest(tokens[name]), **entry}
                           for name, entry in ROLES.items()]}
    system = start_system(workers=(), settings=settings)
    system.start_worker("slow", env={"WORKER_TOKEN": tokens["worker-slow"], "AUTH_TOKEN": ""})
    return system


@pytest.fixture
def api(system: System) -> Iterator[Callable[[str], ApiClient]]:
    """An api client with a token (closed after the test)."""
    made: list[ApiClient] = []

    def make(token: str) -> ApiClient:
        made.append(ApiClient(f"http://127.0.0.1:{system.api_port}", token))
        return made[-1]
    yield make
    for client in made:
        client.close()


def post(system: System, token: str, route: str, body: Any) -> tuple[int, Message, dict[str, Any]]:
    """One request on a connection of its own: (status, headers, answer)."""
    conn = http.client.HTTPConnection("127.0.0.1", system.api_port, timeout=10)
    try:
        conn.request("POST", route, json.dumps(body),
                     {"Authorization": token, "Content-Type": "application/json"})
        answer = conn.getresponse()
        return answer.status, answer.headers, json.loads(answer.read())
    finally:
        conn.close()


def test_a_client_token_cannot_forge_a_workers_report(system, tokens, api):
    client, other_worker = api(tokens["client"]), api(tokens["worker-aaa"])
    task_id = client.create_task("slow", {"sleep_s": 1}, start=True)
    for attempt in (lambda: client.update_status(task_id, "running", attempt=1),
                    lambda: client.update_status(task_id, "finished", result={"forged": True}, attempt=1),
                    lambda: client.heartbeat(task_id, attempt=1, progress=0.9),
                    lambda: other_worker.update_status(task_id, "finished", result={"forged": True},
                                                       attempt=1)):
        with pytest.raises(ApiError) as refused:
            attempt()
        assert refused.value.http_status == 403
    [final] = system.wait_final([task_id])
    result = client.result_task(task_id)
    assert final["status"] == "finished" and "forged" not in result["data"]
    assert [e["status"] for e in result["history"]] == ["ready", "waiting", "running", "finished"]

    audit = [json.loads(line) for line in system.log_path("api").read_text().splitlines()
             if '"taskmill.audit"' in line]
    forged = [a for a in audit if a["token"] == "client" and a["route"] == "/api/update_status_task"]
    assert len(forged) == 2 and all(a["task_id"] == task_id and "403" in a["message"] for a in forged)
    assert any(a["token"] == "worker-slow" and a["task_id"] == task_id and "200" in a["message"]
               for a in audit)  # the real worker's reports, under its own token
    logs = system.logs()
    assert not [name for name, value in tokens.items() if value in logs]
    requests = scrape(f"http://127.0.0.1:{system.api_port}/metrics")
    assert metric_value(requests, "taskmill_api_requests_total", token="client", status="403") == 3


def test_each_role_against_each_route(system, tokens, api):
    """A role's routes are answered (200 or 409: not a permission); the others are 403 and
    leave the task as it was."""
    admin = api(tokens["ops"])
    values = {**tokens, "AUTH_TOKEN": TOKEN}
    for who, allowed in ALLOWED.items():
        for route in sorted(ROUTES):
            task_id = admin.create_task("slow", {"n": 1})
            body = {
                "/api/create_task": {"data": {"service": "slow", "condition": {}}},
                "/api/status_task": {"data": [{"task_id": task_id}]},
                "/api/update_status_task": {"data": {"task_id": task_id, "status": "failed",
                                                     "attempt": 0}},
                "/api/heartbeat_task": {"data": {"task_id": task_id, "attempt": 0}},
                "/api/result_task": {"data": {"task_id": task_id}},
                "/api/tasks": {},
                "/api/start_task": {"task_id": task_id},
                "/api/update_task": {"task_id": task_id, "condition": {"n": 2}},
                "/api/service_task": {},
                "/api/service_stats": {},
                "/api/cancel_task": {"task_id": task_id},
            }[route]
            status, _, answer = post(system, values[who], route, body)
            if route in allowed:
                assert status in (200, 409), (who, route, status, answer)
            else:
                assert status == 403, (who, route, status, answer)
                assert answer["message"].startswith(f"token {who} may not call"), answer
                after = admin.result_task(task_id)
                assert (after["status"], len(after["history"])) == ("ready", 1), (who, route)
                assert admin.call("/api/tasks", {"service": "slow", "status": "ready"})["total"] >= 1


def test_a_burst_over_the_rate_is_429_for_the_instance_as_a_whole(system, tokens):
    """3 at once, then 2 a second, across the api's two worker processes: each request on a
    connection of its own, so both processes answer."""
    began = time.monotonic()
    answers = [post(system, tokens["limited"], "/api/service_task", {}) for _ in range(12)]
    elapsed = time.monotonic() - began
    taken = [a for a in answers if a[0] == 200]
    refused = [a for a in answers if a[0] == 429]
    assert len(taken) + len(refused) == 12
    assert 3 <= len(taken) <= 3 + int(elapsed * 2) + 1, (len(taken), elapsed)
    assert all(int(headers["Retry-After"]) >= 1 for _, headers, _ in refused)
    assert refused[0][2]["message"].startswith("token limited is over its rate limit")
    system.wait_until("the bucket refills", lambda: post(
        system, tokens["limited"], "/api/service_task", {})[0] == 200, timeout_s=5)
    # Another token is not held back by this one's limit.
    assert post(system, tokens["client"], "/api/service_task", {})[0] == 200
