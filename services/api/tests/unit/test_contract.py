"""The validator enforces exactly what /api/openapi.json documents.

The oracle is the `jsonschema` library (Draft 2020-12): for bodies made by mutating valid
ones, the api's own checker accepts a body if and only if the published schema does.
"""

from __future__ import annotations

import copy

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskmill.config import load_config
from taskmill.errors import InvalidParameter
from taskmill_api import contract
from taskmill_api.openapi import document
from taskmill_api.schema_check import Checker, vet
from tests.helpers import ROOT

CONFIG = load_config(ROOT / "config" / "config.yaml", {"AUTH_TOKEN": "x"})
TASK = "ts_aaa_" + "0" * 32
VALID = {
    "/api/create_task": {"data": {"service": "aaa", "condition": {"city": "Lima", "n": [1, {"a": None}]},
                                  "start": True}},
    "/api/status_task": {"data": [{"task_id": TASK}, {"task_id": "x"}]},
    "/api/update_status_task": {"data": {"task_id": TASK, "status": "failed", "message": {"why": "x"},
                                         "attempt": 2, "retry": True}},
    "/api/heartbeat_task": {"data": {"task_id": TASK, "attempt": 1, "progress": 0.5, "message": "m"}},
    "/api/result_task": {"data": {"task_id": TASK}},
    "/api/tasks": {"p_size": 20, "page": 3, "service": "bbb", "status": "running"},
    "/api/start_task": {"data": {"task_id": TASK}},
    "/api/update_task": {"task_id": TASK, "condition": {"k": "v"}},
    "/api/service_task": {},
}
# Values at and around the edges of the contract's rules.
EDGES = st.sampled_from(["", "x" * 201, 0, -1, 1.0, 1.5, 101, 1_000_001, True, None, [], {}, "$x",
                         "Invalid", "finished", "bbb"]).map(copy.deepcopy)  # mutated later
JSON = st.recursive(st.none() | st.booleans() | st.integers(-10, 300) | st.floats(-2, 2)
                    | st.sampled_from(["", "x", "aaa", "running", "finished", "$x", "a.b", TASK]),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.sampled_from(["data", "task_id", "x", "$y", "a.b", "status"]),
                                      inner, max_size=3), max_leaves=6)


def oracle(route: str) -> jsonschema.Draft202012Validator:
    schema = {**contract.requests(CONFIG)[route], "components": {"schemas": contract.COMPONENTS}}
    return jsonschema.Draft202012Validator(schema)


ORACLES = {route: oracle(route) for route in VALID}
CHECKER = Checker(contract.COMPONENTS)


def accepted_by_the_api(route: str, body: object) -> bool:
    try:
        CHECKER.check(contract.requests(CONFIG)[route], body)
    except InvalidParameter:
        return False
    return True


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, object]:
    """A valid body with a few of its values replaced, removed or added."""
    route = draw(st.sampled_from(sorted(VALID)))
    body = copy.deepcopy(VALID[route])
    for _ in range(draw(st.integers(0, 3))):
        holder = body
        while isinstance(holder, dict | list) and holder and draw(st.integers(0, 3)):
            key = draw(st.sampled_from(list(holder) if isinstance(holder, dict) else range(len(holder))))
            if not isinstance(holder[key], dict | list):
                break
            holder = holder[key]
        if isinstance(holder, dict):
            key = draw(st.sampled_from([*holder, "x", "p_size", "result", "retry", "condition"]))
            if key in holder and draw(st.booleans()):
                del holder[key]
            else:
                holder[key] = draw(EDGES | JSON)
        elif isinstance(holder, list) and holder:
            holder[draw(st.integers(0, len(holder) - 1))] = draw(EDGES | JSON)
    return route, body


@pytest.mark.parametrize("route", sorted(VALID))
def test_the_valid_examples_are_valid(route):
    """The examples the mutations start from are accepted by both."""
    assert ORACLES[route].is_valid(VALID[route])
    assert accepted_by_the_api(route, VALID[route])


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_the_api_accepts_what_the_published_schema_accepts_and_nothing_else(case):
    route, body = case
    assert accepted_by_the_api(route, body) == ORACLES[route].is_valid(body), (route, body)


def test_the_published_document_is_the_enforced_one():
    """Each operation's request body schema is the very schema the validator checks."""
    doc = document(CONFIG)
    for route, schema in contract.requests(CONFIG).items():
        assert doc["paths"][route]["post"]["requestBody"]["content"]["application/json"]["schema"] \
            == schema
    assert doc["components"]["schemas"] == contract.COMPONENTS
    jsonschema.Draft202012Validator.check_schema(doc["components"]["schemas"]["JsonValue"])


def test_a_schema_keyword_the_checker_does_not_enforce_is_refused():
    """A schema cannot promise more than is checked: an unknown keyword fails at start-up."""
    with pytest.raises(AssertionError, match="multipleOf"):
        vet({"type": "object", "properties": {"n": {"type": "integer", "multipleOf": 2}}})
