"""The api's handling of requests before any store call: validation, auth, bodies, routes.

The store here refuses every call, which proves that a bad request is answered before
anything touches MongoDB (and so changes nothing). Behaviour with the real store is in
../integration.
"""

from dataclasses import replace

import pytest
from falcon import testing

from taskmill.config import load_config
from taskmill_api.app import ROUTES, create_app
from tests.helpers import ROOT

TOKEN = "unit-token"
UNKNOWN = "ts_aaa_" + "0" * 32


class UntouchableStore:
    """A task store that fails the test if the api calls it."""

    def __getattr__(self, name):
        raise AssertionError(f"the api called store.{name} for a request it should refuse first")


def make_client(headers=None, token=TOKEN, max_body_bytes=None):
    config = load_config(ROOT / "config" / "config.yaml", {"AUTH_TOKEN": token})
    if max_body_bytes is not None:
        config = replace(config, api=replace(config.api, max_body_bytes=max_body_bytes))
    return testing.TestClient(create_app(config, UntouchableStore()), headers=headers)


@pytest.fixture
def client():
    return make_client({"Authorization": TOKEN})


def post(client, route, body=None, **kwargs):
    return client.simulate_post(route, json=body, **kwargs)


@pytest.mark.parametrize("route, body, message", [
    ("/api/create_task", {"data": {"service": "aaa"}}, "Invalid parameter: data.condition is required"),
    ("/api/create_task", {"data": {"service": 1, "condition": {}}}, "service must be a string"),
    ("/api/create_task", {"data": {"service": {"$ne": None}, "condition": {}}},
     "service must be a string"),
    ("/api/create_task", {"data": {"service": "aaa", "condition": "x"}}, "condition must be a JSON"),
    ("/api/create_task", {"data": {"service": "aaa", "condition": {"$where": "1"}}},
     "keys must not start with '$'"),
    ("/api/create_task", {"data": {"service": "aaa", "condition": {"a": {"b.c": 1}}}},
     "keys must not start with '$' or contain '.'"),
    ("/api/create_task", {"data": {"service": "aaa", "condition": {}, "start": "yes"}},
     "start must be true or false"),
    ("/api/create_task", {"service": "aaa", "condition": {}}, "data is required"),
    ("/api/create_task", [1], "body must be a JSON object"),
    ("/api/status_task", {"data": []}, "data must list 1 to 10 items, not 0"),
    ("/api/status_task", {"data": [{"task_id": "x"}] * 11}, "data must list 1 to 10 items, not 11"),
    ("/api/status_task", {"data": {"task_id": "x"}}, "data must be a list"),
    ("/api/status_task", {"data": [{"task_id": {"$ne": None}}]}, "data[0].task_id must be"),
    ("/api/status_task", {"data": [{"id": "x"}]}, "data[0].task_id is required"),
    ("/api/update_status_task", {"data": {"task_id": UNKNOWN, "status": "done"}},
     "status must be one of running, finished, failed"),
    ("/api/update_status_task", {"data": {"task_id": UNKNOWN, "status": "running",
                                          "attempt": True}}, "attempt must be"),
    ("/api/update_status_task", {"data": {"task_id": UNKNOWN, "status": "running",
                                          "result": {}}}, "result is only accepted with status"),
    ("/api/update_status_task", {"data": {"task_id": UNKNOWN, "status": "running",
                                          "worker": "a b"}}, "data.worker must match"),
    ("/api/update_status_task", {"data": {"task_id": UNKNOWN, "status": "running",
                                          "worker": "w" * 129}}, "data.worker is longer than 128"),
    ("/api/result_task", {"data": {"task_id": 5}}, "task_id must be a non-empty string"),
    ("/api/tasks", {"p_size": 0}, "Invalid parameter: p_size must be an integer between 1 and 100"),
    ("/api/tasks", {"p_size": 101}, "p_size must be an integer between 1 and 100"),
    ("/api/tasks", {"p_size": "10"}, "p_size must be an integer between 1 and 100"),
    ("/api/tasks", {"page": 0}, "page must be an integer between 1"),
    ("/api/tasks", {"status": "Invalid"}, "status must be one of ready, waiting"),
    ("/api/tasks", {"status": {"$ne": None}}, "status must be one of"),
    ("/api/tasks", {"sevice": "aaa"}, "unknown field sevice"),
    ("/api/start_task", {}, "task_id is required"),
    ("/api/start_task", {"task_id": ["x"]}, "task_id must be a non-empty string"),
    ("/api/update_task", {"task_id": UNKNOWN}, "condition is required"),
    ("/api/service_task", {"x": 1}, "unknown field x"),
])
def test_bad_parameters_are_400_before_the_store(client, route, body, message):
    """Each bad shape answers 400 saying exactly what is wrong."""
    answer = post(client, route, body)
    assert answer.status_code == 400
    assert answer.json["result"] == "exception"
    assert message in answer.json["message"]


def test_unknown_service_is_service_not_support(client):
    """The original's words for an unknown service, also when filtering the list."""
    for route, body in [("/api/create_task", {"data": {"service": "ccc", "condition": {}}}),
                        ("/api/tasks", {"service": "ccc"})]:
        answer = post(client, route, body)
        assert (answer.status_code, answer.json["message"]) == (400, "service not support")


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("headers", [{}, {"Authorization": "wrong"}, {"Authorization": "Bearer x"},
                                     {"Authorization": ""}, {"Authorization": f"Basic {TOKEN}"}])
def test_bad_or_missing_token_is_401_on_every_route(route, headers):
    """Without the right token no route answers anything but 401."""
    answer = make_client().simulate_post(route, headers=headers, json={})
    assert answer.status_code == 401
    assert answer.json["result"] == "exception"


def test_bearer_token_is_accepted():
    """`Authorization: Bearer <token>` works as well as the bare token."""
    answer = make_client().simulate_post("/api/service_task",
                                         headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.json == {"result": "ok", "count": 2, "data": ["aaa", "bbb"]}


def test_the_api_refuses_to_start_without_a_token():
    """An api without AUTH_TOKEN would be open to anyone: configuration error."""
    with pytest.raises(ValueError, match="AUTH_TOKEN"):
        make_client(token="")


def test_health_and_metrics_need_no_token_the_api_description_does():
    """Liveness and metrics are public (liveness needs no store); the API description is
    for callers holding a token."""
    client = make_client()
    assert client.simulate_get("/healthz").json == {"result": "ok"}
    assert b"taskmill_api_requests_total" in client.simulate_get("/metrics").content
    assert client.simulate_get("/api/openapi.json").status_code == 401
    doc = client.simulate_get("/api/openapi.json", headers={"Authorization": TOKEN}).json
    assert set(doc["paths"]) == set(ROUTES)


def test_oversize_and_non_json_bodies():
    """Too large: 413; not JSON: 400; declared as something else: 415."""
    client = make_client({"Authorization": TOKEN}, max_body_bytes=100)
    big = {"data": {"service": "aaa", "condition": {"x": "y" * 200}}}
    assert post(client, "/api/create_task", big).status_code == 413
    broken = client.simulate_post("/api/create_task", body="{not json",
                                  headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and "not valid UTF-8 JSON" in broken.json["message"]
    form = client.simulate_post("/api/create_task", body="a=b",
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415 and form.json["result"] == "exception"


def test_unknown_route_and_method_keep_the_contract_body(client):
    """Even falcon's own 404 and 405 answer with the contract's body."""
    assert post(client, "/api/nothing").json["result"] == "exception"
    wrong = client.simulate_get("/api/tasks")
    assert wrong.status_code == 405 and wrong.json["result"] == "exception"




def raw_create(condition_json: str) -> bytes:
    return ('{"data": {"service": "aaa", "condition": ' + condition_json + '}}').encode()


@pytest.mark.parametrize("condition, message", [
    ('{"x": NaN}', "NaN is not a number"),
    ('{"x": -Infinity}', "-Infinity is not a number"),
    ('{"x": 1e400}', "data.condition.x is not a finite number"),
    ('{"x": 9223372036854775808}', "data.condition.x is an integer outside the 64-bit range"),
    ('{"x": -9223372036854775809}', "outside the 64-bit range"),
    ('{"x": "a\\u0000b"}', "data.condition.x holds a NUL character"),
    ('{"a\\u0000": 1}', "a key of data.condition holds a NUL character"),
    ('{"x": "\\ud800"}', "data.condition.x holds a lone UTF-16 surrogate"),
    ('{"x": ["\\udfff", 1]}', "data.condition.x[0] holds a lone UTF-16 surrogate"),
    ("[" * 40 + "]" * 40, "nested deeper than 32 levels"),
    ('{"a": ' * 1000 + "1" + "}" * 1000, "nested deeper than 32 levels"),
])
def test_values_the_store_cannot_hold_are_400_before_the_store(client, condition, message):
    """NaN, infinities, integers past 64 bits, NUL, lone surrogates, deep nesting: a 400
    naming where, and the store is never called."""
    answer = client.simulate_post("/api/create_task", body=raw_create(condition),
                                  headers={"Content-Type": "application/json"})
    assert answer.status_code == 400, answer.json
    assert answer.json["message"].startswith("Invalid parameter: ")
    assert message in answer.json["message"]


def test_a_condition_over_the_limit_is_400_saying_the_limit(client):
    big = '{"blob": "' + "x" * (256 * 1024) + '"}'
    answer = client.simulate_post("/api/create_task", body=raw_create(big),
                                  headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert answer.json["message"] == "Invalid parameter: data.condition is larger than 262144 bytes of JSON"


@pytest.mark.parametrize("body", ["[]", "0", '""', "[1]", "true"])
def test_a_tasks_body_that_is_not_an_object_is_400(client, body):
    answer = client.simulate_post("/api/tasks", body=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert answer.json == {"result": "exception", "message": "Invalid parameter: body must be a JSON object"}
