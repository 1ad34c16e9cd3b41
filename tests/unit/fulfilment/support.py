"""Helpers for the fulfilment task handlers' tests (unit and state machine): environment and events."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3

from tests.unit.helpers import unique_name

API_KEY = "partner-key-123"
ORDER = {"orderId": "ord-1", "amountCents": 1250, "currency": "EUR", "paymentId": "pay-1"}


def dependency_env(
    base_url: str, *, secret_arn: str | None, table: str = "circuits", **overrides: str
) -> dict[str, str]:
    """What DownstreamDependency.environment() + ServiceFunction give a task function, for a test twin."""
    env = {
        "POWERTOOLS_SERVICE_NAME": unique_name("fulfilment"),
        "CIRCUIT_BREAKER_TABLE_NAME": table,
        "DEPENDENCY_NAME": unique_name("partner"),
        "DEPENDENCY_BASE_URL": base_url,
        "DEPENDENCY_CRITICAL": "true",
        "DEPENDENCY_MAX_ATTEMPTS": "2",
        "DEPENDENCY_BASE_DELAY_MS": "1",
        "DEPENDENCY_MAX_DELAY_MS": "5",
        "DEPENDENCY_ATTEMPT_TIMEOUT_MS": "2000",
        "DEPENDENCY_SAFETY_MARGIN_MS": "100",
        "DEPENDENCY_CONNECT_TIMEOUT_MS": "200",
        "BREAKER_FAILURE_THRESHOLD": "5",
        "BREAKER_RECOVERY_SECONDS": "30",
        "BREAKER_SUCCESS_THRESHOLD": "1",
        "BREAKER_CACHE_SECONDS": "5",
    }
    if secret_arn is not None:
        env["DEPENDENCY_API_KEY_SECRET_ARN"] = secret_arn
    env.update(overrides)
    return env


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
