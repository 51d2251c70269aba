"""Group-committed inserts: documents inserted while a write is in flight share the next
command, and each thread learns what became of its own document."""

import threading
from typing import Any

import pytest
from bson.errors import InvalidDocument
from pymongo.errors import AutoReconnect, BulkWriteError, DuplicateKeyError

from taskmill.store.inserts import GroupInserts
from tests.system import wait_until


class Collection:
    """A collection whose first insert waits until the test lets it finish; it refuses an
    _id it holds (per document, as a server does) and a document with `bad` (before sending
    anything, as pymongo does with a value it cannot encode)."""

    def __init__(self, down: bool = False) -> None:
        self.commands: list[list[str]] = []  # the _ids of each insert_many, once made
        self.stored: set[str] = {"taken"}
        self.down = down
        self.first_begun = threading.Event()
        self.let_first_end = threading.Event()

    def insert_many(self, docs: list[dict[str, Any]], ordered: bool) -> None:
        assert not ordered  # one document's refusal must not stop the others
        if any("bad" in doc for doc in docs):
            raise InvalidDocument("cannot encode object")
        if not self.first_begun.is_set():
            self.first_begun.set()
            assert self.let_first_end.wait(10)
        self.commands.append([doc["_id"] for doc in docs])
        if self.down:
            raise AutoReconnect("connection refused")
        errors = [{"index": i, "code": 11000, "errmsg": f"E11000 duplicate key {doc['_id']}"}
                  for i, doc in enumerate(docs) if doc["_id"] in self.stored]
        self.stored |= {doc["_id"] for doc in docs}
        if errors:
            raise BulkWriteError({"writeErrors": errors, "nInserted": len(docs) - len(errors)})


def insert_while_one_is_in_flight(collection: Collection, docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Insert "first" and, while its command is in flight, the docs from threads of their
    own: what each insert raised (None: inserted), by _id."""
    inserts = GroupInserts(collection)  # type: ignore[arg-type]
    outcomes: dict[str, Any] = {}

    def insert(doc: dict[str, Any]) -> None:
        try:
            inserts.insert(doc)
            outcomes[doc["_id"]] = None
        except Exception as ex:  # what the caller would see
            outcomes[doc["_id"]] = ex

    first = threading.Thread(target=insert, args=({"_id": "first"},))
    first.start()
    assert collection.first_begun.wait(10)
    others = [threading.Thread(target=insert, args=(doc,)) for doc in docs]
    for thread in others:
        thread.start()
    wait_until("the others waiting", lambda: len(inserts._waiting) == len(docs), 10)
    collection.let_first_end.set()
    for thread in [first, *others]:
        thread.join(10)
    return outcomes


def test_inserts_made_while_one_is_in_flight_share_the_next_command():
    collection = Collection()
    outcomes = insert_while_one_is_in_flight(collection, [{"_id": f"t{i}"} for i in range(6)])
    assert [sorted(ids) for ids in collection.commands] == [["first"], [f"t{i}" for i in range(6)]]
    assert outcomes == dict.fromkeys(["first", *(f"t{i}" for i in range(6))])


def test_a_duplicate_is_refused_to_its_own_thread_only():
    collection = Collection()
    outcomes = insert_while_one_is_in_flight(collection, [{"_id": "a"}, {"_id": "taken"}, {"_id": "b"}])
    assert isinstance(outcomes.pop("taken"), DuplicateKeyError)
    assert outcomes == {"first": None, "a": None, "b": None}
    assert collection.stored >= {"a", "b"}


def test_a_command_that_fails_as_a_whole_fails_every_insert_in_it():
    collection = Collection(down=True)
    outcomes = insert_while_one_is_in_flight(collection, [{"_id": "a"}, {"_id": "b"}])
    assert {name: type(ex) for name, ex in outcomes.items()} == dict.fromkeys(
        ["first", "a", "b"], AutoReconnect)
    assert outcomes["a"] is not outcomes["b"]  # each thread raises its own


def test_a_document_that_cannot_be_encoded_fails_alone():
    collection = Collection()
    outcomes = insert_while_one_is_in_flight(collection, [{"_id": "a"}, {"_id": "x", "bad": 1},
                                                          {"_id": "b"}])
    assert isinstance(outcomes.pop("x"), InvalidDocument)
    assert outcomes == {"first": None, "a": None, "b": None}
    assert "x" not in collection.stored


def test_a_lone_insert_is_written_at_once():
    collection = Collection()
    collection.first_begun.set()  # no insert waits to be let through
    inserts = GroupInserts(collection)  # type: ignore[arg-type]
    inserts.insert({"_id": "alone"})
    with pytest.raises(DuplicateKeyError):
        inserts.insert({"_id": "alone"})
    assert collection.commands == [["alone"], ["alone"]]
