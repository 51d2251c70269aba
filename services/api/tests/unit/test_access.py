"""Who may call what, decided before the store is touched (the store here fails the test if
called): each role against each route, a worker's reports held to its services and to
naming the attempt, 429 past a token's rate, the audit line of a refused change. The same
on the real stack: tests/e2e/test_tokens.py."""

import logging
from dataclasses import replace

import pytest
from falcon import testing

from taskmill.config import load_config
from taskmill.token_config import Role, TokenConfig, digest
from taskmill_api.app import ROUTES, create_app
from taskmill_api.rate_limits import RateLimits
from tests.helpers import ROOT

AAA_TASK = "ts_aaa_" + "0" * 32
BBB_TASK = "ts_bbb_" + "0" * 32
TOKENS = {"client": ("client-secret", Role.CLIENT, ()),
          "worker": ("worker-secret", Role.WORKER, ("aaa",)),
          "admin": ("admin-secret", Role.ADMIN, ())}


class UntouchableStore:
    def __getattr__(self, name):
        raise AssertionError(f"the api called store.{name} for a request it should refuse first")


class Clock:
    now = 50.0

    def __call__(self):
        return self.now


def make_client(limits=None):
    config = load_config(ROOT / "config" / "config.yaml", {"AUTH_TOKEN": "legacy-secret"})
    tokens = [*config.tokens, *(TokenConfig(name, role, digest(value), services)
                                for name, (value, role, services) in TOKENS.items())]
    config = replace(config, tokens=tuple(tokens))
    return testing.TestClient(create_app(config, UntouchableStore(), limits))


ALLOWED = {
    "client": {r for r in ROUTES if r not in ("/api/update_status_task", "/api/heartbeat_task")},
    "worker": {"/api/update_status_task", "/api/heartbeat_task"},
    "admin": set(ROUTES),
}


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize("who", ["client", "worker", "admin", "legacy"])
def test_each_role_against_each_route(who, route):
    """A call the role allows reaches validation (a body no route accepts: 400); one it
    does not is 403 naming the token, and nothing is read or changed."""
    token = "legacy-secret" if who == "legacy" else TOKENS[who][0]
    answer = make_client().simulate_post(route, json=[1], headers={"Authorization": token})
    allowed = who == "legacy" or route in ALLOWED[who]
    if allowed:
        assert answer.status_code == 400, answer.json
    else:
        assert answer.status_code == 403
        name = "AUTH_TOKEN" if who == "legacy" else who
        assert answer.json == {"result": "exception", "message": (
            f"token {name} may not call {route.removeprefix('/api/')}: it is a {who} token")}


def test_openapi_needs_a_client_or_admin_token():
    client = make_client()

    def status(token):
        return client.simulate_get("/api/openapi.json", headers={"Authorization": token}).status_code
    assert (status("client-secret"), status("worker-secret"), status("nope")) == (200, 403, 401)


@pytest.mark.parametrize("route", ["/api/update_status_task", "/api/heartbeat_task"])
def test_a_worker_reports_on_its_services_tasks_naming_the_attempt(route):
    client = make_client()
    headers = {"Authorization": "Bearer worker-secret"}
    body = {"task_id": BBB_TASK, "status": "running", "attempt": 1}
    if route == "/api/heartbeat_task":
        del body["status"]
    other = client.simulate_post(route, json={"data": body}, headers=headers)
    assert other.status_code == 403
    assert "reports on tasks of aaa only" in other.json["message"]
    unnamed = client.simulate_post(route, json={"data": {**body, "task_id": AAA_TASK, "attempt": None}},
                                   headers=headers)
    assert unnamed.status_code == 400
    assert unnamed.json["message"] == "Invalid parameter: attempt is required with a worker token (worker)"


def test_a_workers_list_of_reports_is_held_to_its_services_as_a_whole():
    """One report of another service's task in a list: 403, and none of the list is
    applied (the store is never called)."""
    answer = make_client().simulate_post("/api/update_status_task", headers={
        "Authorization": "worker-secret"}, json={"data": [
            {"task_id": AAA_TASK, "status": "finished", "attempt": 1},
            {"task_id": BBB_TASK, "status": "running", "attempt": 1}]})
    assert answer.status_code == 403
    assert "may not report on task " + BBB_TASK in answer.json["message"]


def test_over_the_rate_is_429_with_retry_after():
    clock = Clock()
    limited = TokenConfig("client", Role.CLIENT, digest("client-secret"), rate_per_s=0.5, burst=2)
    client = make_client(RateLimits([limited], clock=clock))
    headers = {"Authorization": "client-secret"}
    codes = [client.simulate_post("/api/status_task", json=[1], headers=headers).status_code
             for _ in range(3)]
    assert codes == [400, 400, 429]
    refused = client.simulate_post("/api/status_task", json=[1], headers=headers)
    assert refused.headers["Retry-After"] == "2"
    assert refused.json["message"] == "token client is over its rate limit; retry after 2 s"
    clock.now += 2
    assert client.simulate_post("/api/status_task", json=[1], headers=headers).status_code == 400


def test_a_refused_change_is_audited_by_token_name_never_its_value(caplog):
    caplog.set_level(logging.INFO, logger="taskmill.audit")
    make_client().simulate_post("/api/update_status_task", headers={"Authorization": "client-secret"},
                                json={"data": {"task_id": AAA_TASK, "status": "finished"}})
    [line] = [r for r in caplog.records if r.name == "taskmill.audit"]
    assert (line.token, line.route) == ("client", "/api/update_status_task")
    assert "403" in line.getMessage()
    assert "client-secret" not in caplog.text
