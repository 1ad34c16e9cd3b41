"""lambdas/shared/order_status.py: the state machine's conditional writes on moto DynamoDB."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from lambdas.shared.order_status import OrderState, OrderStatusRepository
from tests.unit.helpers import REGION

TABLE = "order-status"


def create_status_table(client: Any, name: str = TABLE) -> None:
    """Shaped like the table the CDK must add: partition key ``orderId`` (S), TTL ``expiresAt``."""
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "orderId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "orderId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.fixture
def repo(aws: None) -> OrderStatusRepository:
    client = boto3.client("dynamodb", region_name=REGION)
    create_status_table(client)
    clock = iter(float(1_767_225_600 + n) for n in range(1000))
    return OrderStatusRepository(TABLE, client, ttl_seconds=3600, clock=lambda: next(clock))


def state(repo: OrderStatusRepository, order_id: str = "ord-1") -> OrderState | None:
    status = repo.get(order_id)
    return None if status is None else status.status


def test_an_order_goes_accepted_processing_done(repo: OrderStatusRepository) -> None:
    assert repo.get("ord-1") is None
    assert repo.accepted("ord-1")
    assert state(repo) is OrderState.ACCEPTED
    assert repo.processing("ord-1")
    assert repo.done("ord-1", "ch_1")

    status = repo.get("ord-1")
    assert status is not None
    assert (status.status, status.chargeId, status.attempts) == (OrderState.DONE, "ch_1", 1)
    assert status.acceptedAt == "2026-01-01T00:00:00.000Z"  # the first write's time, kept
    assert status.updatedAt == "2026-01-01T00:00:02.000Z"
    item = repo.client.get_item(TableName=TABLE, Key={"orderId": {"S": "ord-1"}})["Item"]
    assert int(item["expiresAt"]["N"]) == 1_767_225_602 + 3600


@pytest.mark.parametrize("late", ["accepted", "processing", "failed", "done"])
def test_done_is_final(repo: OrderStatusRepository, late: str) -> None:
    repo.accepted("ord-1")
    repo.done("ord-1", "ch_1")

    applied = {
        "accepted": lambda: repo.accepted("ord-1"),
        "processing": lambda: repo.processing("ord-1"),
        "failed": lambda: repo.failed("ord-1", "idempotency_key_reused"),
        "done": lambda: repo.done("ord-1", "ch_2"),
    }[late]()

    assert applied is False
    status = repo.get("ord-1")
    assert status is not None and status.status is OrderState.DONE and status.chargeId == "ch_1"


def test_a_late_accepted_does_not_move_processing_back(repo: OrderStatusRepository) -> None:
    repo.processing("ord-1")  # the accepted write was lost: processing may come first
    assert repo.accepted("ord-1") is False
    assert state(repo) is OrderState.PROCESSING


def test_retries_count_attempts(repo: OrderStatusRepository) -> None:
    repo.accepted("ord-1")
    for _ in range(3):
        assert repo.processing("ord-1")
    status = repo.get("ord-1")
    assert status is not None and status.attempts == 3


def test_failed_keeps_its_first_reason_and_only_done_leaves_it(repo: OrderStatusRepository) -> None:
    repo.accepted("ord-1")
    assert repo.failed("ord-1", "rejected_by_dependency", "partner answered 401")
    assert repo.failed("ord-1", "idempotency_key_reused") is False
    assert repo.processing("ord-1") is False
    assert repo.accepted("ord-1") is False
    status = repo.get("ord-1")
    assert status is not None
    assert (status.status, status.reason, status.detail) == (
        OrderState.FAILED,
        "rejected_by_dependency",
        "partner answered 401",
    )

    # Fixed and redriven: the charge succeeds, and the failure is history.
    assert repo.done("ord-1", "ch_9")
    status = repo.get("ord-1")
    assert status is not None and status.status is OrderState.DONE
    assert status.reason is None and status.detail is None and status.chargeId == "ch_9"


def test_long_details_are_truncated(repo: OrderStatusRepository) -> None:
    repo.failed("ord-1", "rejected_by_dependency", "x" * 5000)
    status = repo.get("ord-1")
    assert status is not None and status.detail is not None and len(status.detail) == 512
