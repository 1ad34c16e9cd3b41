"""An outage pushes an order through the queue's redrive policy into the DLQ; after recovery the ops CLI
moves it back (StartMessageMoveTask, emulated) and the consumer charges it exactly once.

Real pieces: the consumer handler, moto SQS with its redrive policy (maxReceiveCount), the partner twin,
`python -m ops` in process. The SQS -> Lambda poller is played by the test (receive, invoke, delete)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lambdas.partner_api.faults import FaultDecision
from ops.cli import main as ops_main
from tests.unit.helpers import REGION
from tests.unit.ops.sqs_move_tasks import message_move_tasks
from tests.unit.order_consumer.test_handler import (  # noqa: F401 - make_consumer is a fixture
    Consumer,
    ConsumerFactory,
    make_consumer,
    order,
)
from tests.unit.order_status.test_repository import create_status_table

MAX_RECEIVE_COUNT = 2


@pytest.fixture
def move_tasks() -> Iterator[None]:
    with message_move_tasks():
        yield


def lambda_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """What the SQS event source hands the function for a received message."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {
            name: {"stringValue": value["StringValue"], "dataType": value["DataType"]}
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def poll_once(consumer: Consumer, queue_url: str, queue_arn: str) -> int:
    """One event-source poll: receive, invoke, delete what succeeded, release what failed. Returns #received."""
    messages = consumer.sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"]
    ).get("Messages", [])
    if not messages:
        return 0
    failed = set(consumer.invoke(*(lambda_record(m, queue_arn) for m in messages)))
    for message in messages:
        if message["MessageId"] in failed:
            consumer.sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        else:
            consumer.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return len(messages)


def orders_queue(consumer: Consumer) -> tuple[str, str]:
    """The consumer's source queue, whose redrive policy targets the consumer's DLQ: (url, arn)."""
    sqs = consumer.sqs
    dlq_arn = sqs.get_queue_attributes(QueueUrl=consumer.dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName="orders",
        Attributes={
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
            )
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return queue_url, queue_arn


def test_an_order_dead_lettered_by_an_outage_is_redriven_and_charged_once(
    make_consumer: ConsumerFactory,  # noqa: F811
    move_tasks: None,
) -> None:
    consumer = make_consumer(ORDER_STATUS_TABLE_NAME="order-status")
    create_status_table(consumer.breaker.client, "order-status")
    sqs = consumer.sqs
    queue_url, queue_arn = orders_queue(consumer)
    sqs.send_message(
        QueueUrl=queue_url,
        MessageBody=json.dumps(order("ord-7")),
        MessageAttributes={"IdempotencyKey": {"DataType": "String", "StringValue": "client-key-7"}},
    )

    # The partner is down for longer than the queue retries: the redrive policy dead-letters the order.
    consumer.twin.set_profile("outage")
    for _ in range(MAX_RECEIVE_COUNT):
        assert poll_once(consumer, queue_url, queue_arn) == 1
    assert poll_once(consumer, queue_url, queue_arn) == 0  # moved to the DLQ on the next receive
    assert consumer.twin.charges_by_order() == {}

    peeked = io.StringIO()
    assert (
        ops_main(
            ["--region", REGION, "--json", "dlq", "peek", consumer.dlq_url, "--wait-seconds", "0"],
            stdout=peeked,
        )
        == 0
    )
    [message] = json.loads(peeked.getvalue())["messages"]
    assert message["kind"] == "processing"

    # Recovered: redrive, and the consumer drains the queue.
    consumer.twin.set_profile("healthy")
    redriven = io.StringIO()
    code = ops_main(["--region", REGION, "dlq", "redrive", consumer.dlq_url, "--yes"], stdout=redriven)
    assert code == 0, redriven.getvalue()
    while poll_once(consumer, queue_url, queue_arn):
        pass

    assert consumer.twin.charges_by_order() == {"ord-7": 1}
    assert consumer.twin.duplicate_charges() == {}
    assert [c.idempotency_key for c in consumer.twin.calls("/charges") if c.status < 300] == ["client-key-7"]
    status = consumer.module.order_status.repository.get("ord-7")
    assert status is not None and status.status.value == "done"
    assert (
        sqs.get_queue_attributes(QueueUrl=consumer.dlq_url, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"
        ]["ApproximateNumberOfMessages"]
        == "0"
    )


def test_a_quarantined_order_without_a_producer_key_is_redriven_under_its_original_key(
    make_consumer: ConsumerFactory,  # noqa: F811
    move_tasks: None,
) -> None:
    """The partner charged, but the answer was lost, then it refused the retry: the order is quarantined.

    The redriven message is a new message (new messageId). Processed under a new key it would be charged
    a second time; under the key the quarantine kept (the original messageId) the partner replays it.
    """
    consumer = make_consumer(DEPENDENCY_ATTEMPT_TIMEOUT_MS="300")
    queue_url, queue_arn = orders_queue(consumer)
    consumer.sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(order("ord-8")))  # no key
    # Attempt 1 is served after the client gave up (charged, unconfirmed); attempt 2 is refused (400).
    consumer.twin.enqueue(FaultDecision.passthrough(latency_ms=800), FaultDecision.error(400))

    assert poll_once(consumer, queue_url, queue_arn) == 1
    deadline = time.monotonic() + 3
    while not consumer.twin.charges_by_order() and time.monotonic() < deadline:
        time.sleep(0.02)  # the slow request is still being served after the client left
    assert consumer.twin.charges_by_order() == {"ord-8": 1}
    [original_key] = {c.idempotency_key for c in consumer.twin.calls("/charges")}  # both attempts
    [quarantined] = consumer.dlq()
    attributes = quarantined["MessageAttributes"]
    assert attributes["QuarantineReason"]["StringValue"] == "rejected_by_dependency"
    assert attributes[consumer.module.IDEMPOTENCY_KEY_ATTRIBUTE]["StringValue"] == original_key
    assert attributes["SourceMessageId"]["StringValue"] == original_key  # the messageId was the key
    consumer.sqs.change_message_visibility(
        QueueUrl=consumer.dlq_url, ReceiptHandle=quarantined["ReceiptHandle"], VisibilityTimeout=0
    )

    redriven = io.StringIO()
    code = ops_main(["--region", REGION, "dlq", "redrive", consumer.dlq_url, "--yes"], stdout=redriven)
    assert code == 0, redriven.getvalue()
    [moved] = consumer.sqs.receive_message(QueueUrl=queue_url, VisibilityTimeout=0).get("Messages", [])
    assert moved["MessageId"] != original_key  # a new message, as SQS redrives make them
    while poll_once(consumer, queue_url, queue_arn):
        pass

    assert consumer.twin.charges_by_order() == {"ord-8": 1}
    *_, retried = consumer.twin.calls("/charges")
    assert (retried.status, retried.idempotency_key) == (201, original_key)  # replayed by the partner
