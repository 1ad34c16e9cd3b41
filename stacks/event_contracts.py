"""The infrastructure side of the event contracts (lambdas/shared/events.py).

- :func:`request_schema` renders the ``POST /events`` body schema, a JSON Schema draft-04
  document (the dialect API Gateway models accept) that dispatches on ``detailType`` with a
  ``oneOf`` of one branch per contract, each holding that contract's detail schema;
- :func:`event_pattern` is the rule pattern that matches a set of contracts.

schemas/event.schema.json is this module's output, committed so the API, the local front door
and the tests read one file. Regenerate it after changing a contract::

    .venv/bin/python -m stacks.event_contracts          # writes schemas/event.schema.json
    .venv/bin/python -m stacks.event_contracts --check  # exits 1 if the file is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from lambdas.contracts.events import DETAIL_TYPES
from lambdas.shared.events import CONTRACTS, EventContract
from schemas import EVENT, SCHEMA_DIR

DRAFT4 = "http://json-schema.org/draft-04/schema#"
DETAIL_TYPE_PATTERN = "^[A-Za-z][A-Za-z0-9.]*$"
# Bounds the gateway puts on every detail whatever its type (PutEvents takes up to 256 KB).
MAX_DETAIL_PROPERTIES = 50

# Keywords that mean the same in pydantic's JSON Schema (2020-12) and in draft-04.
_PORTABLE = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "enum",
    "description",
    "minProperties",
    "maxProperties",
    "uniqueItems",
    "multipleOf",
}
# Annotations pydantic adds that draft-04 validation does not need.
_DROPPED = {"title", "default", "examples"}


class UnsupportedSchemaError(ValueError):
    """A contract uses a construct this generator cannot express in draft-04."""


def _to_draft4(node: Any, defs: Mapping[str, Any], path: str) -> Any:
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].removeprefix("#/$defs/")
        if name not in defs or len(node) != 1:
            raise UnsupportedSchemaError(f"{path}: unresolvable $ref {node['$ref']!r}")
        return _to_draft4(defs[name], defs, path)
    if "anyOf" in node:
        # ``X | None = None`` on a detail: the detail model refuses null, so the gateway
        # schema is the plain X (see lambdas.shared.events._Detail).
        branches = [b for b in node["anyOf"] if b != {"type": "null"}]
        if len(branches) != 1 or len(node["anyOf"]) != 2:
            raise UnsupportedSchemaError(f"{path}: only 'X | None' unions are supported")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        return _to_draft4({**rest, **branches[0]}, defs, path)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED or key == "$defs":
            continue
        if key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound], out[key] = value, True
        elif key == "properties":
            out[key] = {name: _to_draft4(sub, defs, f"{path}.{name}") for name, sub in value.items()}
        elif key == "items":
            out[key] = _to_draft4(value, defs, f"{path}[]")
        elif key in _PORTABLE:
            out[key] = value
        else:
            raise UnsupportedSchemaError(f"{path}: keyword {key!r} has no draft-04 rendering here")
    return out


def detail_schema(contract: EventContract) -> dict[str, Any]:
    """The draft-04 schema of one contract's detail."""
    generated = contract.detail.model_json_schema(mode="validation")
    schema: dict[str, Any] = _to_draft4(generated, generated.get("$defs", {}), contract.detail_type)
    return schema


def request_schema(contracts: Iterable[EventContract] = CONTRACTS) -> dict[str, Any]:
    """The ``POST /events`` body schema: detailType picks the contract the detail must follow."""
    contracts = tuple(contracts)
    return {
        "$schema": DRAFT4,
        "title": "PublishEvent",
        "description": (
            "Body of POST /events. Generated from lambdas/shared/events.py by "
            "`python -m stacks.event_contracts`; do not edit. The gateway sets the event source "
            "itself, so a producer cannot impersonate another one; detailType picks the contract "
            "the detail must follow."
        ),
        "type": "object",
        "additionalProperties": False,
        "required": ["detailType", "detail"],
        "properties": {
            "detailType": {
                "type": "string",
                "minLength": 1,
                "maxLength": 128,
                "pattern": DETAIL_TYPE_PATTERN,
                "enum": [c.detail_type for c in contracts],
            },
            "detail": {"type": "object", "minProperties": 1, "maxProperties": MAX_DETAIL_PROPERTIES},
        },
        # Draft-04 has no if/then: exactly one branch can match because the detailType enums
        # are disjoint, and that branch's detail schema must then hold.
        "oneOf": [
            {"properties": {"detailType": {"enum": [c.detail_type]}, "detail": detail_schema(c)}}
            for c in contracts
        ],
    }


def event_pattern(source: str, detail_types: Iterable[str]) -> dict[str, list[str]]:
    """The rule pattern for events of ``detail_types`` published by ``source``.

    Rules match the fixed ingestion source: anything the service itself publishes under
    another source can never be routed back into a consumer (no recursive loops).
    """
    types = list(dict.fromkeys(detail_types))
    unknown = sorted(set(types) - set(DETAIL_TYPES))
    if unknown or not types:
        raise ValueError(f"detail types {unknown or types} are not event contracts {list(DETAIL_TYPES)}")
    return {"source": [source], "detail-type": types}


def render() -> str:
    return json.dumps(request_schema(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate schemas/event.schema.json from the contracts.")
    parser.add_argument("--check", action="store_true", help="fail if the committed file is stale")
    args = parser.parse_args(argv)
    target = SCHEMA_DIR / f"{EVENT}.schema.json"
    rendered = render()
    if args.check:
        if target.read_text() != rendered:
            print(f"{target} is stale: run python -m stacks.event_contracts", file=sys.stderr)
            return 1
        return 0
    target.write_text(rendered)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
