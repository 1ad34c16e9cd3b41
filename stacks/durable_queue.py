"""A work queue that cannot lose a message: encrypted, SSL-only, with a dead-letter queue; and the one way
to build a queue where failed work is parked for people (``parking_queue``)."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.compliance import acknowledge

# The longest SQS allows: a DLQ is where humans look, and they need time to do it.
DLQ_RETENTION = Duration.days(14)
# Neither applies to a parking queue: it has no DLQ of its own, and only a queue's redrive policy
# tells cdk-nag that it is one (SQS3); a sink written by a Catch, a target or a subscription is not.
PARKING_RULES = ("Serverless::Serverless-SQSRedrivePolicy", "AwsSolutions::AwsSolutions-SQS3")


def parking_queue(
    scope: Construct,
    construct_id: str,
    *,
    reason: str,
    removal_policy: RemovalPolicy,
    rules: Sequence[str] = PARKING_RULES,
) -> sqs.Queue:
    """A queue where failed work waits for people: encrypted, SSL-only, kept ``DLQ_RETENTION``.

    ``reason`` says who writes to it, for the acknowledged ``rules``.
    """
    queue = sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=DLQ_RETENTION,
        removal_policy=removal_policy,
    )
    for rule in rules:
        acknowledge(queue, rule, reason)
    return queue


class DurableQueue(Construct):
    """Queue + DLQ pair. The caller derives the visibility timeout from its consumer."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        visibility_timeout: Duration,
        retention: Duration,
        max_receive_count: int,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        # What its consumer needs to know to pace its retries (QUEUE_* in lambdas/shared/consumer_settings.py).
        self.visibility_timeout_seconds = int(visibility_timeout.to_seconds())
        self.max_receive_count = max_receive_count
        if retention.to_seconds() >= DLQ_RETENTION.to_seconds():
            # A message keeps its original enqueue time when moved, so a DLQ that expires no
            # later than its source would delete redriven messages on arrival.
            raise ValueError("queue retention must be shorter than the DLQ's 14 days")
        self.dead_letter_queue = parking_queue(
            self,
            "DeadLetterQueue",
            reason="This is the dead-letter queue; its messages are redriven by the operations tooling",
            removal_policy=removal_policy,
            rules=PARKING_RULES[:1],
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=retention,
            visibility_timeout=visibility_timeout,
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=max_receive_count, queue=self.dead_letter_queue
            ),
            removal_policy=removal_policy,
        )
