"""The gateway's models and the consumers' models accept exactly the same requests.

A body the gateway accepts but a consumer refuses is a 202 followed by poison: the caller is told the
request is stored, then it ends in a DLQ. Every case below goes through both: the local front door's
validator (draft-04 with ECMA 262 patterns, as API Gateway validates) and the model the consumer parses
the stored message with. Each case states the verdict both must reach.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from lambdas.shared.events import BY_DETAIL_TYPE
from lambdas.shared.models import Order
from localcloud.front_door import _validation_error, ecma_pattern
from schemas import EVENT, ORDER, load_schema

ORDER_BODY: dict[str, Any] = {
    "orderId": "ord-1",
    "customerId": "cust-1",
    "items": [{"sku": "SKU-1", "quantity": 1}],
    "amountCents": 100,
    "currency": "EUR",
}


def order(**changes: Any) -> str:
    return json.dumps({**ORDER_BODY, **changes})


def customer_updated(**detail: Any) -> str:
    return json.dumps({"detailType": "CustomerUpdated", "detail": {"customerId": "cust-1", **detail}})


# (case, body as the client sends it, accepted by both?)
ORDER_CASES = [
    ("a plain order", order(), True),
    ("trailing newline in an id", order(orderId="ord-1\n"), False),
    ("trailing carriage return in an id", order(orderId="ord-1\r"), False),
    ("leading space in an id", order(customerId=" cust-1"), False),
    ("lone surrogate in an id", order(orderId="ord-\ud800"), False),
    ("65-character id", order(orderId="o" * 65), False),
    ("64-character id", order(orderId="o" * 64), True),
    ("trailing newline in a currency", order(currency="EUR\n"), False),
    ("trailing newline in a sku", order(items=[{"sku": "SKU-1\n", "quantity": 1}]), False),
    ("amount as a float", order(amountCents=100.0), False),
    ("amount as a string", order(amountCents="100"), False),
    ("amount as a boolean", order(amountCents=True), False),
    ("quantity as a boolean", order(items=[{"sku": "SKU-1", "quantity": True}]), False),
    ("unknown field", order(coupon="FREE"), False),
    ("whitespace-padded body", "  \n" + order() + "\n\t  ", True),
]
EVENT_CASES = [
    ("a thin update", customer_updated(), True),
    ("a display name with an emoji", customer_updated(displayName="Ann \U0001f600"), True),
    ("a display name with accents", customer_updated(displayName="Zoë Ångström"), True),
    ("lone high surrogate", customer_updated(displayName="Ann \ud800"), False),
    ("lone low surrogate", customer_updated(displayName="\udc00Ann"), False),
    ("reversed surrogate pair", customer_updated(displayName="\ude00\ud83d"), False),
    ("a tab in a display name", customer_updated(displayName="Ann\tLee"), False),
    ("a trailing newline in a display name", customer_updated(displayName="Ann\n"), False),
    ("an empty display name", customer_updated(displayName=""), False),
    ("an email", customer_updated(email="ann@example.com"), True),
    ("an email with a trailing newline", customer_updated(email="ann@example.com\n"), False),
    ("an email with a space", customer_updated(email="ann lee@example.com"), False),
    ("an email with a lone surrogate", customer_updated(email="ann\ud800@example.com"), False),
    ("an email without a dot", customer_updated(email="ann@example"), False),
    ("null for an optional field", customer_updated(email=None), False),
    ("opt-in as a string", customer_updated(marketingOptIn="yes"), False),
]


def gateway_accepts(schema: str, body: str) -> bool:
    return _validation_error(load_schema(schema), body) is None


def order_consumer_accepts(body: str) -> bool:
    try:
        Order.model_validate(json.loads(body))
    except ValidationError:
        return False
    return True


def event_consumers_accept(body: str) -> bool:
    document = json.loads(body)
    try:
        BY_DETAIL_TYPE[document["detailType"]].detail.model_validate(document["detail"])
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(("case", "body", "accepted"), ORDER_CASES, ids=[c[0] for c in ORDER_CASES])
def test_orders(case: str, body: str, accepted: bool) -> None:
    assert (gateway_accepts(ORDER, body), order_consumer_accepts(body)) == (accepted, accepted)


@pytest.mark.parametrize(("case", "body", "accepted"), EVENT_CASES, ids=[c[0] for c in EVENT_CASES])
def test_events(case: str, body: str, accepted: bool) -> None:
    assert (gateway_accepts(EVENT, body), event_consumers_accept(body)) == (accepted, accepted)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("^[a-z]+$", r"^[a-z]+\Z"),
        (r"^[$]\$$", r"^[$]\$\Z"),  # a $ in a class or escaped is a character
        ("^(?:a|b)$", r"^(?:a|b)\Z"),
    ],
)
def test_ecma_end_of_string_is_the_end(pattern: str, expected: str) -> None:
    assert ecma_pattern(pattern) == expected


# (key as the front door hands it to the template, accepted by both?)
KEY_CASES = [
    ("uuid", "0b6f3c1e-9a4d-4d6b-8f1e-2c3a4b5c6d7e", True),
    ("every visible ASCII character", "".join(chr(c) for c in range(0x21, 0x7F)), True),
    ("255 characters", "k" * 255, True),
    ("256 characters", "k" * 256, False),
    ("empty", "", False),
    ("space", "a b", False),
    ("tab", "a\tb", False),
    ("trailing newline", "key\n", False),
    ("DEL", "key\x7f", False),
    ("Latin-1", "clé", False),
    ("beyond Latin-1", "ключ", False),
]


@pytest.mark.parametrize(("case", "key", "accepted"), KEY_CASES, ids=[c[0] for c in KEY_CASES])
def test_the_gateway_and_the_consumer_accept_the_same_idempotency_keys(
    case: str, key: str, accepted: bool
) -> None:
    from lambdas.contracts.api import IDEMPOTENCY_KEY_HEADER
    from lambdas.order_consumer.processing import InvalidOrderError, validate_idempotency_key
    from localcloud import vtl
    from stacks.ingestion_api import KEY_IS_REFUSED

    request = vtl.Input("{}", {"header": {IDEMPOTENCY_KEY_HEADER: key}, "querystring": {}, "path": {}})
    gateway = vtl.render(f"#if({KEY_IS_REFUSED})refused#{{else}}accepted#end", input=request) == "accepted"
    try:
        consumer = validate_idempotency_key(key) == key
    except InvalidOrderError:
        consumer = False
    assert (gateway, consumer) == (accepted, accepted), case
