"""BatchBudget: records an invocation has no time for are not attempted and go back to the queue at once."""

from __future__ import annotations

import logging
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from lambdas.shared.batch_budget import BatchBudget, NotAttemptedError, most_received_first
from tests.unit.helpers import REGION

LOGGER = logging.getLogger("test")


def received(sqs: Any, queue_url: str, count: int) -> list[SQSRecord]:
    """Messages taken off the queue as an event source would (in flight for 300 s), as Lambda records."""
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=count, VisibilityTimeout=300)
    return [
        SQSRecord(
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "eventSourceARN": queue_arn,
            }
        )
        for m in messages["Messages"]
    ]


@pytest.fixture
def queue(aws: None) -> tuple[Any, str]:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="orders", Attributes={"VisibilityTimeout": "300"})["QueueUrl"]
    for n in range(4):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{n}")
    return sqs, url


def test_records_are_claimed_while_time_is_left_and_released_at_once_after(queue: tuple[Any, str]) -> None:
    sqs, url = queue
    records = received(sqs, url, 4)
    left = iter(
        [5_000, 4_900, 900, 800, 800]
    )  # the clock the handler would read: per record, then at the end
    budget = BatchBudget(sqs, required_ms=1_000, logger=LOGGER)
    budget.start(lambda: next(left))

    budget.claim(records[0])
    budget.claim(records[1])
    with pytest.raises(NotAttemptedError):
        budget.claim(records[2])
    # Once a record was skipped, later ones are too: the batch is not worked on out of order.
    with pytest.raises(NotAttemptedError):
        budget.claim(records[3])

    assert [r.message_id for r in budget.unclaimed] == [records[2].message_id, records[3].message_id]
    assert budget.release_unclaimed() == 2
    # Visible again now, not after the 300 s visibility timeout; the claimed ones stay in flight.
    again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in again) == ["m2", "m3"]


def test_each_invocation_starts_with_nothing_unclaimed(queue: tuple[Any, str]) -> None:
    sqs, url = queue
    records = received(sqs, url, 2)
    budget = BatchBudget(sqs, required_ms=1_000, logger=LOGGER)
    budget.start(lambda: 10)
    with pytest.raises(NotAttemptedError):
        budget.claim(records[0])

    budget.start(lambda: 10_000)
    budget.claim(records[1])
    assert budget.unclaimed == []
    assert budget.release_unclaimed() == 0


def test_a_failed_release_is_logged_not_raised(
    queue: tuple[Any, str], caplog: pytest.LogCaptureFixture
) -> None:
    sqs, url = queue
    [record] = received(sqs, url, 1)
    gone = SQSRecord({**record.raw_event, "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:deleted"})
    budget = BatchBudget(sqs, required_ms=1_000, logger=LOGGER)
    budget.start(lambda: 0)
    with pytest.raises(NotAttemptedError):
        budget.claim(gone)

    with caplog.at_level(logging.WARNING):
        assert budget.release_unclaimed() == 0
    assert "return after the visibility timeout" in caplog.text


def test_records_received_most_often_come_first_and_ties_keep_their_order() -> None:
    def record(message_id: str, receives: int) -> dict[str, Any]:
        return {"messageId": message_id, "attributes": {"ApproximateReceiveCount": str(receives)}}

    event = {"Records": [record("a", 1), record("b", 4), record("c", 1), record("d", 2)], "other": 1}

    ordered = most_received_first(event)

    assert [r["messageId"] for r in ordered["Records"]] == ["b", "d", "a", "c"]
    assert ordered["other"] == 1
    assert [r["messageId"] for r in event["Records"]] == ["a", "b", "c", "d"]  # the input is left alone


def test_a_record_is_started_only_if_one_as_slow_as_the_recent_ones_still_fits(
    queue: tuple[Any, str],
) -> None:
    sqs, url = queue
    records = received(sqs, url, 4)
    # Time left at each claim, then at the end: the first record took 2 s (its bookkeeping was slow).
    left = iter([9_000, 7_000, 4_400, 4_400])
    budget = BatchBudget(sqs, required_ms=1_000, reserve_ms=500, logger=LOGGER)
    budget.start(lambda: next(left))

    budget.claim(records[0])
    assert budget.needed_ms == 1_000  # nothing measured yet: the configured floor
    budget.claim(records[1])  # 7 s left >= 2 s + 0.5 s
    assert budget.needed_ms == 2_500
    budget.claim(records[2])  # the second took 2.6 s: 4.4 s left >= 2.6 s + 0.5 s
    assert budget.needed_ms == 3_100
    budget.release_unclaimed()  # closes the third record: it took no time

    # The next invocation remembers this environment's slowest recent record: its first record needs one
    # full attempt (its calls stop when time runs out), the ones after it the measured slowness.
    left = iter([3_000, 2_900, 2_900])
    budget.start(lambda: next(left))
    assert budget.needed_ms == 1_000
    budget.claim(records[3])
    with pytest.raises(NotAttemptedError, match="needs 3100 ms"):
        budget.claim(records[0])


def test_the_first_record_of_an_invocation_is_always_tried_when_a_full_attempt_fits(
    queue: tuple[Any, str],
) -> None:
    """Held to the slowest recent record, a record slower than the timeout would be handed back by every
    invocation, spending a receive each time, until the queue dead-lettered it untried."""
    sqs, url = queue
    records = received(sqs, url, 2)
    budget = BatchBudget(sqs, required_ms=1_000, reserve_ms=500, logger=LOGGER)
    left = iter([5_000, 100])
    budget.start(lambda: next(left))
    budget.claim(records[0])  # this one used the whole invocation (4.9 s)
    budget.release_unclaimed()
    for _ in range(3):  # every later invocation with a full attempt's time still tries its first record
        budget.start(lambda: 4_800)
        budget.claim(records[1])
        assert budget.unclaimed == []
    budget.start(lambda: 900)  # not even one attempt fits: handed back
    with pytest.raises(NotAttemptedError):
        budget.claim(records[1])


def test_after_failed_attempts_the_rest_wait_out_the_visibility_timeout(queue: tuple[Any, str]) -> None:
    """A struggling dependency: releasing at once would only spend receives toward the DLQ."""
    sqs, url = queue
    records = received(sqs, url, 4)
    budget = BatchBudget(sqs, required_ms=1_000, logger=LOGGER)
    budget.start(lambda: 0)
    for record in records:
        with pytest.raises(NotAttemptedError):
            budget.claim(record)

    assert budget.release_unclaimed(attempted_failures=1) == 0
    assert "Messages" not in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)  # still in flight
