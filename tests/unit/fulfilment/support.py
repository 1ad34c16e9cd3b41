"""Helpers for the fulfilment task handlers' tests (unit and state machine): environment and events."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3

from tests.unit.helpers import breaker_caller_env, unique_name

API_KEY = "partner-key-123"
ORDER = {"orderId": "ord-1", "amountCents": 1250, "currency": "EUR", "paymentId": "pay-1"}


def dependency_env(
    base_url: str, *, secret_arn: str | None, table: str = "circuits", **overrides: str
) -> dict[str, str]:
    """What DownstreamDependency.environment() + ServiceFunction give a task function, for a test twin."""
    return breaker_caller_env(base_url, secret_arn=secret_arn, service="fulfilment", table=table, **overrides)


def task_event(
    step: str,
    *,
    execution: str = "exec-1",
    order: dict[str, Any] | None = None,
    charge: dict[str, Any] | None = None,
    shipment: dict[str, Any] | None = None,
    attempt: int = 0,
    circuit_wait_until: float | None = None,
) -> dict[str, Any]:
    """The payload order_fulfilment.asl.json sends a task (its Parameters.Payload, resolved)."""
    event: dict[str, Any] = {
        "step": step,
        "order": order or ORDER,
        "idempotencyKey": "PaymentReceived:pay-1",
        "executionName": execution,
        "attempt": attempt,
    }
    if circuit_wait_until is not None:
        event["circuitWaitUntil"] = circuit_wait_until
    if charge is not None:
        event["charge"] = charge
    if shipment is not None:
        event["shipment"] = shipment
    return event


@dataclass
class CircuitBus:
    """An event bus with a rule for CircuitOpened events of one service, delivering to an SQS queue."""

    name: str
    queue_url: str
    sqs: Any

    def published(self) -> list[dict[str, Any]]:
        """Every event the rule delivered so far (consumed: each is returned once)."""
        events: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return events
            for message in messages:
                events.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


def create_circuit_bus(service_name: str, *, region: str = "eu-west-1") -> CircuitBus:
    """Inside mock_aws: the bus, a rule matching what the stack's CircuitOpened rule matches, a queue."""
    events = boto3.client("events", region_name=region)
    sqs = boto3.client("sqs", region_name=region)
    name = unique_name("circuit-events")
    events.create_event_bus(Name=name)
    queue_url = sqs.create_queue(QueueName=unique_name("circuit-opened"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="circuit-opened",
        EventBusName=name,
        EventPattern=json.dumps({"source": [f"{service_name}.circuits"], "detail-type": ["CircuitOpened"]}),
    )
    events.put_targets(Rule="circuit-opened", EventBusName=name, Targets=[{"Id": "queue", "Arn": queue_arn}])
    return CircuitBus(name=name, queue_url=queue_url, sqs=sqs)
