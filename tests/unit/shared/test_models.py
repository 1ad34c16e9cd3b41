"""The order message and partner charge contracts."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from lambdas.shared.api_key import parse_api_key_secret
from lambdas.shared.models import ChargeRequest, ChargeResponse, Order

VALID: dict[str, Any] = {
    "orderId": "ord-123",
    "customerId": "cust_9",
    "items": [{"sku": "SKU-001", "quantity": 2}],
    "amountCents": 4999,
    "currency": "EUR",
}


def with_value(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    body = copy.deepcopy(VALID)
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


def test_a_valid_order_parses() -> None:
    order = Order.model_validate(VALID)
    assert order.orderId == "ord-123" and order.items[0].quantity == 2


def test_the_largest_valid_order_parses() -> None:
    Order.model_validate(
        {
            "orderId": "o" * 64,
            "customerId": "c" * 64,
            "items": [{"sku": "S" * 32, "quantity": 1000}] * 50,
            "amountCents": 100_000_000,
            "currency": "EUR",
        }
    )


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("orderId",), ""),
        (("orderId",), "a" * 65),
        (("orderId",), "drop table;"),
        (("customerId",), "cust 9"),
        (("items",), []),
        (("items",), [{"sku": "SKU-001", "quantity": 1}] * 51),
        (("items", 0, "sku"), "ab"),
        (("items", 0, "sku"), "sku-001"),
        (("items", 0, "quantity"), 0),
        (("items", 0, "quantity"), 1001),
        (("items", 0, "extra"), True),
        (("amountCents",), 0),
        (("amountCents",), 100_000_001),
        (("amountCents",), "4999"),
        (("amountCents",), 49.99),
        (("amountCents",), True),
        (("currency",), "eur"),
        (("currency",), "EURO"),
        (("coupon",), "FREE"),
    ],
)
def test_invalid_orders_are_rejected(path: tuple[Any, ...], value: Any) -> None:
    with pytest.raises(ValidationError):
        Order.model_validate(with_value(path, value))


def test_charge_request_is_built_from_an_order() -> None:
    request = ChargeRequest.for_order(Order.model_validate(VALID))
    assert request.model_dump() == {"orderId": "ord-123", "amountCents": 4999, "currency": "EUR"}


def test_charge_response_tolerates_new_fields_but_not_missing_ones() -> None:
    body = {"chargeId": "ch_1", "orderId": "ord-123", "amountCents": 4999, "currency": "EUR", "fee": 10}
    assert ChargeResponse.model_validate(body).chargeId == "ch_1"
    with pytest.raises(ValidationError):
        ChargeResponse.model_validate({"orderId": "ord-123"})


@pytest.mark.parametrize(
    ("secret", "key"), [("k3y", "k3y"), (" k3y\n", "k3y"), ('{"apiKey": "k3y", "other": 1}', "k3y")]
)
def test_api_key_secret_formats(secret: str, key: str) -> None:
    assert parse_api_key_secret(secret) == key


@pytest.mark.parametrize("secret", ["", "   ", "{not json", '{"apiKey": ""}', '{"key": "x"}'])
def test_unusable_api_key_secrets_are_rejected(secret: str) -> None:
    with pytest.raises(ValueError):
        parse_api_key_secret(secret)
