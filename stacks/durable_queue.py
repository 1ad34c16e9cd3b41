"""A work queue that cannot lose a message: encrypted, SSL-only, with a dead-letter queue."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.compliance import acknowledge

# The longest SQS allows: a DLQ is where humans look, and they need time to do it.
DLQ_RETENTION = Duration.days(14)


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
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DLQ_RETENTION,
            removal_policy=removal_policy,
        )
        acknowledge(
            self.dead_letter_queue,
            "Serverless::Serverless-SQSRedrivePolicy",
            "This is the dead-letter queue; its messages are redriven by the operations tooling",
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
