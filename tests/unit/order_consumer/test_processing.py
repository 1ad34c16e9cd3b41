"""Domain code of the consumer: order parsing and charging through the dependency client."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from lambdas.order_consumer.processing import (
    InvalidOrderError,
    UnconfirmedChargeError,
    charge_order,
    parse_order,
    producer_scope,
    scoped_idempotency_key,
    validate_idempotency_key,
)
from lambdas.shared.dependency_client import DependencyClient, DependencyResponse, create_session
from lambdas.shared.models import Order
from localcloud.fault_dependency import FaultDependency
from tests.unit.helpers import BreakerTable, VirtualClock, make_policy

ORDER = {
    "orderId": "ord-7",
    "customerId": "cust-1",
    "items": [{"sku": "SKU-1", "quantity": 1}],
    "amountCents": 990,
    "currency": "USD",
}


@pytest.fixture
def client(
    twin: FaultDependency, breaker_table: BreakerTable, vclock: VirtualClock
) -> Iterator[DependencyClient]:
    session = create_session()
    yield DependencyClient(
        make_policy(twin.base_url, base_delay_ms=1, max_delay_ms=5),
        breaker_table_name=breaker_table.name,
        dynamodb_client=breaker_table.client,
        session=session,
        sleep=vclock.sleep,
        clock=vclock.monotonic,
        rng=random.Random(0),
    )
    session.close()


def test_parse_order_accepts_a_valid_body() -> None:
    assert parse_order(json.dumps(ORDER)).orderId == "ord-7"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{not json", "invalid_json"),
        ("", "invalid_json"),
        (json.dumps({**ORDER, "amountCents": "990"}), "schema_violation"),
        (json.dumps({**ORDER, "extra": 1}), "schema_violation"),
        (json.dumps([ORDER]), "schema_violation"),
    ],
)
def test_parse_order_classifies_poison(body: str, reason: str) -> None:
    with pytest.raises(InvalidOrderError) as caught:
        parse_order(body)
    assert caught.value.reason == reason


@pytest.mark.parametrize("key", ["", "k" * 256, "bad\nkey"])
def test_invalid_idempotency_keys_are_rejected(key: str) -> None:
    with pytest.raises(InvalidOrderError):
        validate_idempotency_key(key)


def test_charge_order_sends_the_charge_with_its_idempotency_key(
    client: DependencyClient, twin: FaultDependency
) -> None:
    result = charge_order(
        client,
        Order.model_validate(ORDER),
        idempotency_key="idem-7",
        remaining_ms=lambda: 10_000,
    )

    assert result.orderId == "ord-7" and result.chargeId.startswith("ch_")
    assert result.idempotencyKey == "idem-7" and result.attempts == 1
    [call] = twin.calls("/charges")
    assert call.idempotency_key == "idem-7" and call.order_id == "ord-7"


def test_a_retried_charge_is_charged_once(client: DependencyClient, twin: FaultDependency) -> None:
    order = Order.model_validate(ORDER)
    first = charge_order(client, order, idempotency_key="idem-7", remaining_ms=lambda: 10_000)
    again = charge_order(client, order, idempotency_key="idem-7", remaining_ms=lambda: 10_000)

    assert again.chargeId == first.chargeId
    assert twin.charges_by_order() == {"ord-7": 1}


class StubClient:
    """Returns a canned response: the partner's answer is what is under test, not HTTP."""

    def __init__(self, response: DependencyResponse) -> None:
        self.response = response
        self.policy = make_policy("http://127.0.0.1:1")

    def post(self, path: str, **_: Any) -> DependencyResponse:
        return self.response


@pytest.mark.parametrize(
    "response",
    [
        DependencyResponse(status=201, body={"unexpected": True}),
        DependencyResponse(status=201, body="<html>ok</html>"),
        DependencyResponse(
            status=201,
            body={"chargeId": "ch_1", "orderId": "someone-else", "amountCents": 990, "currency": "USD"},
        ),
        DependencyResponse(
            status=None, body={"chargeId": "cached"}, from_fallback=True, fallback_source="default"
        ),
    ],
)
def test_an_unconfirmed_charge_is_an_error(response: DependencyResponse) -> None:
    with pytest.raises(UnconfirmedChargeError):
        charge_order(
            StubClient(response),  # type: ignore[arg-type]
            Order.model_validate(ORDER),
            idempotency_key="k",
            remaining_ms=lambda: 10_000,
        )


@pytest.mark.parametrize(
    ("principal", "scope"),
    [
        (
            "arn:aws:sts::123456789012:assumed-role/order-producer/session-1",
            "123456789012:role/order-producer",
        ),
        ("arn:aws:sts::123456789012:assumed-role/order-producer/other", "123456789012:role/order-producer"),
        ("arn:aws:iam::123456789012:user/alice", "123456789012:user/alice"),
        ("arn:aws:iam::123456789012:role/path/order-producer", "123456789012:role/path/order-producer"),
        ("AROAEXAMPLE:session", "AROAEXAMPLE:session"),
    ],
)
def test_a_producer_is_its_role_or_user_whatever_the_session(principal: str, scope: str) -> None:
    assert producer_scope(principal) == scope


def test_a_scoped_key_is_the_same_per_producer_and_key_and_differs_across_producers() -> None:
    one = "arn:aws:sts::123456789012:assumed-role/order-producer/s1"
    assert scoped_idempotency_key(one, "k") == scoped_idempotency_key(one.replace("s1", "s2"), "k")
    assert scoped_idempotency_key(one, "k") != scoped_idempotency_key(one, "k2")
    assert scoped_idempotency_key(one, "k") != scoped_idempotency_key(one.replace("order", "other"), "k")
    assert scoped_idempotency_key(None, "k") == scoped_idempotency_key("", "k") == "k"  # unstamped messages
