"""RetryVisibility: records that failed because of their dependency come back when a call can succeed."""

from __future__ import annotations

import logging
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

from lambdas.shared.batch_budget import NotAttemptedError
from lambdas.shared.dependency_client import (
    BudgetExhaustedError,
    DependencyUnavailableError,
    PermanentUpstreamError,
    TransientUpstreamError,
    UpstreamConfigurationError,
)
from lambdas.shared.retry_visibility import KEPT_MESSAGE, RESERVED_RECEIVES, BackoffPolicy, RetryVisibility
from tests.unit.helpers import REGION

LOGGER = logging.getLogger("test")
POLICY = BackoffPolicy(visibility_timeout_seconds=180, max_receive_count=8, recovery_seconds=30)


def transient(retry_after: float | None = None) -> TransientUpstreamError:
    return TransientUpstreamError("503", dependency="partner", status_class="5xx", retry_after=retry_after)


def circuit_open(retry_in: float) -> DependencyUnavailableError:
    return DependencyUnavailableError("open", dependency="partner", retry_in_seconds=retry_in)


def delay(
    error: BaseException, receive_count: int = 1, rand: float = 1.0, policy: BackoffPolicy = POLICY
) -> Any:
    return policy.delay_for(error, receive_count, lambda: rand)


def test_an_open_circuit_sends_records_back_when_it_lets_a_probe_through_plus_jitter() -> None:
    assert delay(circuit_open(12.2), rand=0.0) == 13  # whole seconds, never early
    assert delay(circuit_open(12.2), rand=1.0) == 14  # + up to the first receive's backoff (1 s)
    assert delay(circuit_open(12.2), receive_count=3, rand=1.0) == 17  # + up to 4 s on a third receive


def test_transient_failures_back_off_exponentially_with_full_jitter_on_the_receive_count() -> None:
    assert [delay(transient(), receive_count=n, rand=1.0) for n in (1, 2, 3)] == [1, 2, 4]
    assert [delay(transient(), receive_count=3, rand=r) for r in (0.0, 0.3, 0.5)] == [0, 2, 2]
    assert delay(BudgetExhaustedError("no time", dependency="partner", status_class="timeout")) == 1


def test_the_backoff_is_capped_by_the_recovery_window_and_the_visibility_timeout() -> None:
    many_receives = BackoffPolicy(visibility_timeout_seconds=180, max_receive_count=20, recovery_seconds=30)
    assert delay(transient(), receive_count=12, policy=many_receives) == 30
    short_visibility = BackoffPolicy(visibility_timeout_seconds=20, max_receive_count=20, recovery_seconds=30)
    assert delay(transient(), receive_count=12, policy=short_visibility) == 20
    assert delay(circuit_open(600.0), policy=short_visibility) == 20


def test_a_retry_after_is_honoured() -> None:
    assert delay(transient(retry_after=7.5), rand=0.0) == 8
    assert delay(transient(retry_after=0.5), receive_count=3, rand=1.0) == 4  # the backoff is longer


def test_the_last_receives_before_the_dlq_keep_the_whole_visibility_timeout() -> None:
    # maxReceiveCount 8: receives 1-4 retry fast; from the 5th, three receives are left and each failure
    # keeps the visibility timeout, so reaching the DLQ takes >= 3 x 180 s (time to open and pause).
    assert [delay(transient(), receive_count=n, rand=0.0) for n in range(1, 8)] == [0, 0, 0, 0, 180, 180, 180]
    assert delay(circuit_open(3.0), receive_count=5, rand=0.0) == 180
    assert RESERVED_RECEIVES == 3
    five = BackoffPolicy(visibility_timeout_seconds=180, max_receive_count=5, recovery_seconds=30)
    assert [delay(transient(), receive_count=n, rand=1.0, policy=five) for n in range(1, 5)] == [
        1,
        180,
        180,
        180,
    ]


@pytest.mark.parametrize(
    "error",
    [
        UpstreamConfigurationError("401", dependency="partner", status_class="4xx", status=401),
        PermanentUpstreamError("422", dependency="partner", status_class="4xx", status=422),
        NotAttemptedError("no time"),
        RuntimeError("idempotency store down"),
    ],
    ids=["our-key-refused", "permanent", "not-attempted", "other"],
)
def test_failures_the_dependency_did_not_cause_keep_the_visibility_timeout(error: BaseException) -> None:
    assert delay(error) is None


def test_an_order_charged_elsewhere_comes_back_once_that_invocation_must_have_ended() -> None:
    in_progress = IdempotencyAlreadyInProgressError("Execution already in progress")
    # The other invocation ends within the function timeout (this invocation's time at its start).
    assert POLICY.delay_for(in_progress, 1, lambda: 1.0, in_progress_wait_seconds=29.6) == 30
    short_visibility = BackoffPolicy(visibility_timeout_seconds=20, max_receive_count=8, recovery_seconds=30)
    assert short_visibility.delay_for(in_progress, 1, lambda: 1.0, in_progress_wait_seconds=29.6) == 20
    # Its last receives before the DLQ, or without the wait known: the visibility timeout, as before.
    assert POLICY.delay_for(in_progress, 5, lambda: 1.0, in_progress_wait_seconds=29.6) is None
    assert POLICY.delay_for(in_progress, 1, lambda: 1.0) is None


def test_records_not_attempted_back_off_like_a_transient_failure_when_asked() -> None:
    not_attempted = NotAttemptedError("no time")
    assert POLICY.delay_for(not_attempted, 3, lambda: 1.0, not_attempted_too=True) == 4
    assert POLICY.delay_for(not_attempted, 5, lambda: 0.0, not_attempted_too=True) == 180  # reserved receives
    assert POLICY.delay_for(not_attempted, 3, lambda: 1.0) is None  # BatchBudget releases them instead


# ------------------------------------------------------------------------------------- on a queue


@pytest.fixture
def in_flight(aws: None) -> tuple[Any, str, list[SQSRecord]]:
    """Three messages received as an event source would (in flight for 180 s), as Lambda records."""
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="orders", Attributes={"VisibilityTimeout": "180"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for n in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{n}")
    taken = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=3, VisibilityTimeout=180)["Messages"]
    records = [
        SQSRecord(
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "eventSourceARN": arn,
                "attributes": {"ApproximateReceiveCount": "1"},
            }
        )
        for m in sorted(taken, key=lambda m: m["Body"])
    ]
    return sqs, url, records


def visible_bodies(sqs: Any, url: str) -> list[str]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return sorted(m["Body"] for m in messages)


def test_apply_changes_the_visibility_of_dependency_failures_only(
    in_flight: tuple[Any, str, list[SQSRecord]],
) -> None:
    sqs, url, records = in_flight
    # rand 0: a transient failure on a first receive comes back at once (full jitter reaches zero).
    retry = RetryVisibility(sqs, POLICY, logger=LOGGER, rand=lambda: 0.0)

    applied = retry.apply(
        [
            (records[0], transient()),
            (records[1], circuit_open(45.0)),
            (records[2], RuntimeError("store down")),
        ]
    )

    assert applied == {records[0].message_id: 0, records[1].message_id: 45}
    # m0 is back now; m1 waits for the circuit; m2 keeps the 180 s visibility timeout it was received with.
    assert visible_bodies(sqs, url) == ["m0"]


def test_a_duplicate_in_progress_elsewhere_comes_back_after_the_function_timeout_and_kept_ones_are_logged(
    in_flight: tuple[Any, str, list[SQSRecord]], caplog: pytest.LogCaptureFixture
) -> None:
    sqs, _url, records = in_flight
    retry = RetryVisibility(sqs, POLICY, logger=LOGGER, rand=lambda: 0.0)

    with caplog.at_level(logging.INFO):
        applied = retry.apply(
            [
                (records[0], IdempotencyAlreadyInProgressError("in progress")),
                (records[1], RuntimeError("store down")),
            ],
            in_progress_wait_seconds=0.2,
        )

    assert applied == {records[0].message_id: 1}  # whole seconds: not before the holder's timeout
    kept = [r for r in caplog.records if r.getMessage() == KEPT_MESSAGE]
    assert [r.__dict__["errors"] for r in kept] == [{records[1].message_id: "RuntimeError"}]


def test_a_failed_change_is_logged_not_raised(
    in_flight: tuple[Any, str, list[SQSRecord]], caplog: pytest.LogCaptureFixture
) -> None:
    sqs, url, records = in_flight
    sqs.delete_message(QueueUrl=url, ReceiptHandle=records[0].receipt_handle)
    stale = SQSRecord({**records[0].raw_event, "receiptHandle": "not-a-receipt-handle"})
    retry = RetryVisibility(sqs, POLICY, logger=LOGGER, rand=lambda: 0.0)

    with caplog.at_level(logging.WARNING):
        applied = retry.apply([(stale, transient()), (records[1], transient())])

    assert applied == {records[1].message_id: 0}
    assert "backoff not applied" in caplog.text
