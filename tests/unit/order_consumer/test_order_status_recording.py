"""The consumer records each order's status (ORDER_STATUS_TABLE_NAME): accepted -> processing -> done /
failed, never backwards, and a status table that fails never fails a charged record.

Same harness as test_handler.py (the real handler module, moto, the partner twin over HTTP)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from lambdas.partner_api.faults import FaultDecision, FaultProfile
from lambdas.shared.order_status import OrderState, OrderStatus, OrderStatusRepository
from tests.unit.helpers import REGION, metric_points
from tests.unit.order_consumer.test_handler import (  # noqa: F401 - make_consumer is a fixture
    Consumer,
    ConsumerFactory,
    make_consumer,
    order,
    sqs_record,
)
from tests.unit.order_status.test_repository import create_status_table

TABLE = "order-status"


@pytest.fixture
def statuses(aws: None) -> OrderStatusRepository:
    client = boto3.client("dynamodb", region_name=REGION)
    create_status_table(client, TABLE)
    return OrderStatusRepository(TABLE, client)


def status_of(repo: OrderStatusRepository, order_id: str) -> OrderStatus:
    status = repo.get(order_id)
    assert status is not None, f"no status for {order_id}"
    return status


def consumer_with_status(make_consumer: ConsumerFactory, **env: Any) -> Consumer:  # noqa: F811
    return make_consumer(ORDER_STATUS_TABLE_NAME=TABLE, **env)


def test_a_charged_order_is_done_with_its_charge(
    make_consumer: ConsumerFactory,  # noqa: F811
    statuses: OrderStatusRepository,
) -> None:
    consumer = consumer_with_status(make_consumer)

    assert consumer.invoke(sqs_record(order("ord-1"))) == []

    status = status_of(statuses, "ord-1")
    assert status.status is OrderState.DONE
    assert status.chargeId  # the partner's charge id, from the confirmed charge
    assert status.attempts == 1 and status.acceptedAt is not None


def test_a_transient_failure_leaves_it_processing_until_a_redelivery_succeeds(
    make_consumer: ConsumerFactory,  # noqa: F811
    statuses: OrderStatusRepository,
) -> None:
    consumer = consumer_with_status(make_consumer)
    consumer.twin.set_profile("outage")
    record = sqs_record(order("ord-1"))

    assert consumer.invoke(record) == [record["messageId"]]
    status = status_of(statuses, "ord-1")
    assert (status.status, status.attempts) == (OrderState.PROCESSING, 1)

    consumer.twin.set_profile("healthy")
    assert consumer.invoke(record) == []
    status = status_of(statuses, "ord-1")
    assert (status.status, status.attempts) == (OrderState.DONE, 2)


def test_an_order_the_partner_rejects_is_failed_with_the_reason(
    make_consumer: ConsumerFactory,  # noqa: F811
    statuses: OrderStatusRepository,
) -> None:
    consumer = consumer_with_status(make_consumer)
    consumer.twin.enqueue(FaultDecision.error(422))

    assert consumer.invoke(sqs_record(order("ord-1"))) == []

    status = status_of(statuses, "ord-1")
    assert status.status is OrderState.FAILED and status.reason == "rejected_by_dependency"
    assert status.detail and "422" in status.detail


def test_an_order_refused_for_our_key_is_not_failed(
    make_consumer: ConsumerFactory,  # noqa: F811
    statuses: OrderStatusRepository,
) -> None:
    """A 401/403 says our configuration is wrong, not the order: it waits in the queue, not failed."""
    consumer = consumer_with_status(make_consumer, partner_api_key="a-different-key")
    record = sqs_record(order("ord-1"))

    assert consumer.invoke(record) == [record["messageId"]]

    assert status_of(statuses, "ord-1").status is not OrderState.FAILED


def test_a_valid_order_with_an_invalid_key_is_failed(
    make_consumer: ConsumerFactory,  # noqa: F811
    statuses: OrderStatusRepository,
) -> None:
    consumer = consumer_with_status(make_consumer)

    assert consumer.invoke(sqs_record(order("ord-1"), idempotency_key="k" * 300)) == []

    assert status_of(statuses, "ord-1").reason == "invalid_idempotency_key"
    # An unparseable body has no trustworthy order id: no status at all (GET answers 404).
    assert consumer.invoke(sqs_record("{not json")) == []


def test_late_duplicates_never_move_a_done_order_backwards(
    make_consumer: ConsumerFactory,  # noqa: F811
    statuses: OrderStatusRepository,
) -> None:
    consumer = consumer_with_status(make_consumer)
    first = sqs_record(order("ord-1", amount=100), message_id="m-1", idempotency_key="k-1")
    assert consumer.invoke(first) == []
    done = status_of(statuses, "ord-1")

    # The same message again (SQS at-least-once), then a conflicting reuse of its key for the same order.
    assert (
        consumer.invoke(sqs_record(order("ord-1", amount=100), message_id="m-2", idempotency_key="k-1")) == []
    )
    assert (
        consumer.invoke(sqs_record(order("ord-1", amount=999), message_id="m-3", idempotency_key="k-1")) == []
    )

    after = status_of(statuses, "ord-1")
    assert after.status is OrderState.DONE and after.chargeId == done.chargeId
    assert after.attempts == 1  # the duplicate replayed the stored result: no new attempt recorded
    assert after.reason is None
    assert [m["MessageAttributes"]["QuarantineReason"]["StringValue"] for m in consumer.dlq()] == [
        "idempotency_key_reused"
    ]


def test_a_status_table_that_fails_does_not_fail_the_charge(
    make_consumer: ConsumerFactory,  # noqa: F811
) -> None:
    consumer = make_consumer(ORDER_STATUS_TABLE_NAME="no-such-table")
    consumer.twin.set_profile(FaultProfile())

    assert consumer.invoke(sqs_record(order("ord-1"))) == []

    assert consumer.twin.charges_by_order() == {"ord-1": 1}
    errors = metric_points(consumer.output(), "OrderStatusWriteErrors")
    assert sum(sum(point["OrderStatusWriteErrors"]) for point in errors) == 3  # accepted, processing, done


def test_without_the_table_nothing_is_recorded(make_consumer: ConsumerFactory) -> None:  # noqa: F811
    consumer = make_consumer()

    assert consumer.module.order_status.enabled is False
    assert consumer.invoke(sqs_record(order("ord-1"))) == []
