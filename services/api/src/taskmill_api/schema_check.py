"""Check a parsed JSON value against a schema of `contract`, saying exactly what is wrong.

Interprets the part of JSON Schema 2020-12 that the contract uses (type, enum, const,
properties, required, additionalProperties, propertyNames, items, minItems, maxItems,
minLength, maxLength, pattern, minimum, maximum, anyOf, allOf, if/then, local $ref) and
the contract's two `x-` keywords. A keyword it does not know is a programming error, so a
schema cannot quietly promise more than is enforced. The value must already have passed
`validation.check_storable` (bounded depth), which keeps the recursion here bounded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from taskmill.errors import InvalidParameter, UnknownService

Schema = Mapping[str, Any]
Path = tuple[str | int, ...]

KNOWN = frozenset({
    "type", "enum", "const", "properties", "required", "additionalProperties", "propertyNames",
    "items", "minItems", "maxItems", "minLength", "maxLength", "pattern", "minimum", "maximum",
    "anyOf", "allOf", "if", "then", "$ref", "description", "format", "example", "default",
    "x-maxJsonBytes", "x-unknownService"})
PATTERN_ONLY = frozenset({"type", "pattern", "description"})  # a key is a string already
TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
KINDS = {"object": "a JSON object", "array": "a list", "string": "a string",
         "boolean": "true or false", "null": "null", "integer": "an integer", "number": "a number"}


class Refused(Exception):
    """A value does not fit: where (a path) and what is wrong."""

    def __init__(self, path: Path, detail: str, unknown_service: object = None) -> None:
        super().__init__(detail)
        self.path = path
        self.detail = detail
        self.unknown_service = unknown_service

    def error(self) -> InvalidParameter:
        if self.unknown_service is not None:
            return UnknownService(self.unknown_service)
        return InvalidParameter(self.detail)


def where(path: Path) -> str:
    """`data[0].task_id` for ("data", 0, "task_id"); `body` for the root."""
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    text = text or "body"
    return text if len(text) <= 120 else text[:120] + "…"


class Checker:
    """Checks values against schemas whose `$ref`s point into `components`."""

    def __init__(self, components: Mapping[str, Schema]) -> None:
        self._components = components
        for schema in components.values():
            vet(schema)
        # Components that only say "any JSON value whose keys, at every depth, match
        # propertyNames" (JsonValue): checked by one loop instead of a walk per value.
        self._deep_key_rules = {id(s) for name, s in components.items() if _deep_key_rule(name, s)}

    def check(self, schema: Schema, value: Any) -> Any:
        """Return value (integral floats read as integers), or raise InvalidParameter."""
        try:
            return self._check(schema, value, ())
        except Refused as ex:
            raise ex.error() from None

    def _check(self, schema: Schema, value: Any, path: Path) -> Any:
        if "$ref" in schema:
            target = self._components[schema["$ref"].rsplit("/", 1)[1]]
            if id(target) in self._deep_key_rules:
                value = self._deep_keys(target["propertyNames"], value, path)
            else:
                value = self._check(target, value, path)
        if "anyOf" in schema:
            value = self._any_of(schema["anyOf"], value, path)
        if "type" in schema:
            value = _typed(schema["type"], value, path, schema)
        if "enum" in schema and not any(_equal(value, v) for v in schema["enum"]):
            if schema.get("x-unknownService") and isinstance(value, str):
                raise Refused(path, "", unknown_service=value)
            raise Refused(path, f"{where(path)} must be one of {', '.join(map(str, schema['enum']))}")
        if "const" in schema and not _equal(value, schema["const"]):
            raise Refused(path, f"{where(path)} must be {json.dumps(schema['const'])}")
        return self._shaped(schema, value, path)

    def _shaped(self, schema: Schema, value: Any, path: Path) -> Any:
        """The keywords that depend on what kind of value it is, then the rules."""
        if isinstance(value, dict):
            value = self._object(schema, value, path)
        elif isinstance(value, list):
            value = self._array(schema, value, path)
        elif isinstance(value, str):
            _string(schema, value, path)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            _number(schema, value, path)
        for rule in schema.get("allOf", ()):
            value = self._rule(rule, value, path)
        if "x-maxJsonBytes" in schema:
            limit = schema["x-maxJsonBytes"]
            if len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()) > limit:
                raise Refused(path, f"{where(path)} is larger than {limit} bytes of JSON")
        return value

    def _deep_keys(self, names: Schema, value: Any, path: Path) -> Any:
        todo = [(value, path)] if isinstance(value, dict | list) else []
        while todo:
            node, here = todo.pop()
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, item in items:
                if isinstance(key, str):
                    self._key(names, key, here)
                if isinstance(item, dict | list):
                    todo.append((item, (*here, key)))
        return value

    def _key(self, names: Schema, key: str, path: Path) -> None:
        try:
            if names.keys() <= PATTERN_ONLY:  # the usual rule, on every key: kept short
                if not _pattern(names["pattern"]).search(key):
                    raise Refused(path, "")
            else:
                self._check(names, key, (*path, key))
        except Refused:
            raise Refused((*path, key), f"{where(path)} has a key {key[:60]!r}: "
                                        f"{names.get('description', 'not allowed')}") from None

    def _any_of(self, options: list[Schema], value: Any, path: Path) -> Any:
        """The first option that fits; else the refusal of an option of the value's type
        that got deepest (the first such): it names what the caller most likely got wrong."""
        refusals = []
        for option in options:
            try:
                return self._check(option, value, path)
            except Refused as ex:
                refusals.append((_of_type(option, value, path), len(ex.path), ex))
        raise max(refusals, key=lambda refusal: refusal[:2])[2]

    def _rule(self, rule: Schema, value: Any, path: Path) -> Any:
        if "if" not in rule:
            return self._check(rule, value, path)
        try:
            self._check(rule["if"], value, path)
        except Refused:
            return value
        try:
            return self._check(rule["then"], value, path)
        except Refused:
            raise Refused(path, rule["description"]) from None

    def _object(self, schema: Schema, value: dict[str, Any], path: Path) -> dict[str, Any]:
        for name in schema.get("required", ()):
            if name not in value:
                raise Refused((*path, name), f"{where((*path, name))} is required")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        names = schema.get("propertyNames")
        checked = {}
        for name, item in value.items():
            here = (*path, name)
            if names is not None:
                self._key(names, name, path)
            if name in props:
                checked[name] = self._check(props[name], item, here)
            elif extra is False:
                raise Refused(here, f"unknown field {where(here)}")
            elif extra is True:
                checked[name] = item
            else:
                checked[name] = self._check(extra, item, here)
        return checked

    def _array(self, schema: Schema, value: list[Any], path: Path) -> list[Any]:
        low, high = schema.get("minItems", 0), schema.get("maxItems")
        if len(value) < low or (high is not None and len(value) > high):
            span = f"{low} to {high}" if high is not None else f"at least {low}"
            raise Refused(path, f"{where(path)} must list {span} items, not {len(value)}")
        items = schema.get("items")
        if items is None:
            return value
        return [self._check(items, item, (*path, i)) for i, item in enumerate(value)]


def vet(schema: Schema) -> None:
    """Fail (a programming error) on a keyword this checker does not enforce: a schema must
    not promise what the api does not check."""
    unknown = schema.keys() - KNOWN
    assert not unknown, f"schema keywords this checker does not enforce: {sorted(unknown)}"
    subschemas = [*schema.get("properties", {}).values(), *schema.get("anyOf", ()),
                  *schema.get("allOf", ())]
    subschemas += [schema[k] for k in ("propertyNames", "items", "if", "then") if k in schema]
    if isinstance(schema.get("additionalProperties"), Mapping):
        subschemas.append(schema["additionalProperties"])
    for sub in subschemas:
        vet(sub)


def _deep_key_rule(name: str, schema: Schema) -> bool:
    """Whether the component `name` is exactly: keys match propertyNames, every value
    (in objects and lists) is this component again."""
    self_ref = {"$ref": f"#/components/schemas/{name}"}
    return (schema.keys() - {"description"} == {"propertyNames", "additionalProperties", "items"}
            and schema["additionalProperties"] == self_ref and schema["items"] == self_ref)


def _equal(value: Any, expected: Any) -> bool:
    """JSON equality: true is not 1."""
    return isinstance(value, bool) == isinstance(expected, bool) and value == expected


def _of_type(schema: Schema, value: Any, path: Path) -> bool:
    """Whether the value is of the schema's type (true when it names none)."""
    if "type" not in schema:
        return True
    try:
        _typed(schema["type"], value, path, schema)
    except Refused:
        return False
    return True


def _typed(types: str | list[str], value: Any, path: Path, schema: Schema) -> Any:
    """value if it is of one of the types (an integral float counts as an integer)."""
    types = [types] if isinstance(types, str) else types
    for kind in types:
        if kind in ("integer", "number"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if kind == "number":
                return value
            if isinstance(value, int):
                return value
            if value.is_integer():
                return int(value)
        elif isinstance(value, TYPES[kind]):
            return value
    raise Refused(path, f"{where(path)} must be {_kind(types, schema)}")


def _kind(types: list[str], schema: Schema) -> str:
    """What a value of these types must be, in words, with its bounds."""
    words = []
    for kind in types:
        if kind == "string" and schema.get("minLength", 0) >= 1:
            words.append("a non-empty string")
        elif kind in ("integer", "number") and ("minimum" in schema or "maximum" in schema):
            words.append(_bounded(kind, schema))
        else:
            words.append(KINDS[kind])
    return " or ".join(words)


def _bounded(kind: str, schema: Schema) -> str:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        return f"{KINDS[kind]} between {low} and {high}"
    if low == 0:
        return f"a non-negative {kind}"
    return f"{KINDS[kind]} ≥ {low}" if low is not None else f"{KINDS[kind]} ≤ {high}"


def _string(schema: Schema, value: str, path: Path) -> None:
    if len(value) < schema.get("minLength", 0):
        raise Refused(path, f"{where(path)} must be {_kind(['string'], schema)}")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        raise Refused(path, f"{where(path)} is longer than {schema['maxLength']} characters")
    if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
        raise Refused(path, f"{where(path)} must match {schema['pattern']}")


def _number(schema: Schema, value: float, path: Path) -> None:
    low, high = schema.get("minimum"), schema.get("maximum")
    if (low is not None and value < low) or (high is not None and value > high):
        types = schema.get("type", [])
        kind = "integer" if "integer" in ([types] if isinstance(types, str) else types) else "number"
        raise Refused(path, f"{where(path)} must be {_bounded(kind, schema)}")


@cache
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)
