"""JSON Schemas of the API's request bodies: one source for the API Gateway models,
the local front door and every test."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent
ORDER = "order"
EVENT = "event"


@cache
def _load(name: str) -> str:
    return (SCHEMA_DIR / f"{name}.schema.json").read_text()


def load_schema(name: str) -> dict[str, Any]:
    """A fresh copy of ``schemas/<name>.schema.json`` (callers may mutate it)."""
    schema: dict[str, Any] = json.loads(_load(name))
    return schema
