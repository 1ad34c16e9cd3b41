"""The request schemas accept what real clients send right and reject what they get wrong."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest

from schemas import EVENT, ORDER, load_schema

VALID_ORDER: dict[str, Any] = {
    "orderId": "ord-123",
    "customerId": "cust_9",
    "items": [{"sku": "SKU-001", "quantity": 2}],
    "amountCents": 4999,
    "currency": "EUR",
}
VALID_EVENT: dict[str, Any] = {"detailType": "CustomerUpdated", "detail": {"customerId": "cust_9"}}


def _errors(schema_name: str, body: Any) -> list[str]:
    schema = load_schema(schema_name)
    validator = jsonschema.Draft4Validator(schema)
    return [error.message for error in validator.iter_errors(body)]


def _with(base: dict[str, Any], path: tuple, value: Any = ...) -> dict[str, Any]:
    body = copy.deepcopy(base)
    target = body
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


@pytest.mark.parametrize("name", [ORDER, EVENT])
def test_schemas_are_valid_draft4_as_api_gateway_requires(name: str) -> None:
    schema = load_schema(name)
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    jsonschema.Draft4Validator.check_schema(schema)


def test_a_valid_order_is_accepted() -> None:
    assert _errors(ORDER, VALID_ORDER) == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (_with(VALID_ORDER, ("currency",)), "'currency' is a required property"),
        (_with(VALID_ORDER, ("amountCents",), "49.99"), "'49.99' is not of type 'integer'"),
        (_with(VALID_ORDER, ("amountCents",), 0), "0 is less than the minimum of 1"),
        (
            _with(VALID_ORDER, ("coupon",), "FREE"),
            "Additional properties are not allowed ('coupon' was unexpected)",
        ),
        (_with(VALID_ORDER, ("items",), []), "[] should be non-empty"),
        (_with(VALID_ORDER, ("items", 0, "quantity"), 1001), "1001 is greater than the maximum of 1000"),
        (_with(VALID_ORDER, ("items", 0, "sku"), "x"), "'x' does not match"),
        (_with(VALID_ORDER, ("currency",), "eur"), "'eur' does not match"),
        (_with(VALID_ORDER, ("orderId",), "a" * 65), "is too long"),
        (_with(VALID_ORDER, ("orderId",), "drop table;"), "does not match"),
        ({}, "'orderId' is a required property"),
        ([], "[] is not of type 'object'"),
        (None, "None is not of type 'object'"),
    ],
)
def test_orders_real_clients_get_wrong_are_rejected(body: Any, expected: str) -> None:
    errors = _errors(ORDER, body)
    assert any(expected in e for e in errors), errors


def test_an_oversize_order_is_rejected_and_the_largest_valid_one_fits_an_sqs_message() -> None:
    too_many = _with(VALID_ORDER, ("items",), [{"sku": "SKU-001", "quantity": 1}] * 51)
    assert any("is too long" in e for e in _errors(ORDER, too_many))
    largest = {
        "orderId": "o" * 64,
        "customerId": "c" * 64,
        "items": [{"sku": "S" * 32, "quantity": 1000}] * 50,
        "amountCents": 100000000,
        "currency": "EUR",
    }
    assert _errors(ORDER, largest) == []
    assert len(json.dumps(largest).encode()) < 256 * 1024


def test_a_valid_event_is_accepted() -> None:
    assert _errors(EVENT, VALID_EVENT) == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (_with(VALID_EVENT, ("detail",)), "'detail' is a required property"),
        (_with(VALID_EVENT, ("detail",), {}), "should be non-empty"),
        (_with(VALID_EVENT, ("detail",), "text"), "'text' is not of type 'object'"),
        (_with(VALID_EVENT, ("detailType",), "1bad"), "does not match"),
        (_with(VALID_EVENT, ("source",), "aws.ec2"), "Additional properties are not allowed"),
        ({}, "'detailType' is a required property"),
    ],
)
def test_events_real_clients_get_wrong_are_rejected(body: Any, expected: str) -> None:
    errors = _errors(EVENT, body)
    assert any(expected in e for e in errors), errors
