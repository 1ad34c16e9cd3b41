"""order_fulfilment.asl.json on moto with the REAL task handlers, in process, against the partner twin.

The Charge/Ship/Notify functions are ``lambdas.fulfilment.handler.{charge,ship,notify}_handler``, the module
imported once per function the way a cold start does (environment parsed at import), registered as
in-process Lambda functions, calling ``localcloud.fault_dependency.FaultDependency`` over HTTP with the
shared breaker on moto DynamoDB. Retry intervals are compressed (``asl.compress_timings``); attempt counts
and error routing are the production ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import boto3
import pytest

from lambdas.partner_api.faults import FaultDecision
from localcloud.fault_dependency import FaultDependency
from tests.statemachines import asl
from tests.statemachines.conftest import REGION, Machine, function_arn
from tests.unit.fulfilment.support import API_KEY, create_circuit_bus, dependency_env
from tests.unit.helpers import FakeLambdaContext, create_key_table, import_fresh, unique_name

TABLE = "circuits"
SOURCE_SERVICE = "resilient-orders"
PAYMENT = {
    "paymentId": "pay-7",
    "orderId": "ord-7",
    "amountCents": 4999,
    "currency": "EUR",
    "method": "card",
    "receivedAt": "2026-11-25T09:31:00Z",
}


@dataclass
class World:
    """Everything one test's order fulfilment runs against."""

    partner: FaultDependency
    machine: Machine
    sqs: Any
    queues: dict[str, str]
    handlers: dict[str, ModuleType] = field(default_factory=dict)

    def drain(self, queue: str) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(
            QueueUrl=self.queues[queue],
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        return [
            {"body": json.loads(m["Body"]), "attributes": m.get("MessageAttributes", {})} for m in messages
        ]


@pytest.fixture
def twins() -> Iterator[list[FaultDependency]]:
    started: list[FaultDependency] = []
    yield started
    for twin in started:
        twin.stop()


@pytest.fixture
def world(
    aws: None,
    sqs: Any,
    create_machine: Callable[..., Machine],
    register: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    twins: list[FaultDependency],
) -> Callable[..., World]:
    """world(notify_env=..., **partner_env) -> the machine with the real handlers registered."""
    for name, value in {
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "ResilientServerlessTest",
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    create_key_table(boto3.client("dynamodb", region_name=REGION), TABLE)
    secret_arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="partner-api-key", SecretString=API_KEY
    )["ARN"]

    def build(notify_env: dict[str, str] | None = None, **partner_overrides: str) -> World:
        partner = FaultDependency(api_key=API_KEY, seed=7).start()
        twins.append(partner)
        queues = {
            "failure": sqs.create_queue(QueueName="fulfilment-failures")["QueueUrl"],
            "notification": sqs.create_queue(QueueName="notification-failures")["QueueUrl"],
        }
        handlers: dict[str, ModuleType] = {}
        env = dependency_env(partner.base_url, secret_arn=secret_arn, table=TABLE, **partner_overrides)
        for step in ("charge", "ship", "notify"):
            step_env = {**env, **(notify_env or {})} if step == "notify" else env
            for name, value in step_env.items():
                monkeypatch.setenv(name, value)
            handlers[step] = import_fresh("lambdas.fulfilment.handler")  # a cold start with that env
            register(step, getattr(handlers[step], f"{step}_handler"))
        machine = create_machine(
            asl.ORDER_FULFILMENT,
            {
                "ChargeFunctionArn": function_arn("charge"),
                "ShipFunctionArn": function_arn("ship"),
                "NotifyFunctionArn": function_arn("notify"),
                "FailureQueueUrl": queues["failure"],
                "NotificationFailureQueueUrl": queues["notification"],
            },
        )
        return World(partner=partner, machine=machine, sqs=sqs, queues=queues, handlers=handlers)

    return build


def order_input(key: str = "PaymentReceived:pay-7") -> dict[str, Any]:
    """What the workflow starter gives an execution for the PaymentReceived event above."""
    return {
        "idempotencyKey": key,
        "messageId": "m-1",
        "order": {"orderId": "ord-7", "amountCents": 4999, "currency": "EUR", "paymentId": "pay-7"},
    }


def errors(execution: Any, state: str) -> list[str | None]:
    return [attempt.get("error") for attempt in execution.attempts(state)]


def test_charge_fails_twice_with_503_then_succeeds_and_the_order_is_fulfilled_once(
    world: Callable[..., World],
) -> None:
    # One HTTP attempt per invocation, so each 503 reaches the workflow and its Charge retrier.
    w = world(DEPENDENCY_MAX_ATTEMPTS="1")
    w.partner.enqueue(FaultDecision.error(503), FaultDecision.error(503))

    execution = w.machine.run(order_input(), name="PaymentReceived-pay-7", timeout=60)

    assert execution.status == "SUCCEEDED"
    assert errors(execution, "Charge") == ["TransientUpstreamError", "TransientUpstreamError", None]
    assert [a["parameters"]["Payload"]["attempt"] for a in execution.attempts("Charge")] == [0, 1, 2]
    charges = w.partner.calls("/charges")
    assert [c.status for c in charges] == [503, 503, 201]
    # Every attempt carried the same key, so the partner could never charge twice.
    assert {c.idempotency_key for c in charges} == {"PaymentReceived:pay-7:Charge"}
    assert w.partner.charges_by_order() == {"ord-7": 1}
    assert [c.idempotency_key for c in w.partner.calls("/shipments")] == ["PaymentReceived:pay-7:Ship"]
    assert [c.idempotency_key for c in w.partner.calls("/notifications")] == ["PaymentReceived:pay-7:Notify"]
    output = execution.output
    assert output["shipment"]["result"]["chargeId"] == output["charge"]["result"]["chargeId"]
    assert output["notification"]["result"]["notificationId"].startswith("nt_")
    assert w.drain("failure") == [] and w.drain("notification") == []


def test_a_permanently_rejected_shipment_is_recorded_on_the_failure_queue(
    world: Callable[..., World],
) -> None:
    w = world()
    # The charge's single request passes, the shipment is refused with a 400.
    w.partner.enqueue(FaultDecision.passthrough(), FaultDecision.error(400))

    execution = w.machine.run(order_input(), timeout=60)

    assert (execution.status, execution.error) == ("FAILED", "PermanentUpstreamError")
    assert errors(execution, "Ship") == ["PermanentUpstreamError"]  # MaxAttempts 0: never retried
    assert [c.status for c in w.partner.calls("/shipments")] == [400]  # nor by the client
    assert w.partner.calls("/notifications") == []
    assert execution.states[-3:] == ["ShipFailed", "RecordFailure", "FulfilmentFailed"]
    [record] = w.drain("failure")
    body = record["body"]
    assert (body["kind"], body["failedStep"], body["error"]) == (
        "ORDER_FULFILMENT_FAILED",
        "Ship",
        "PermanentUpstreamError",
    )
    cause = json.loads(body["cause"])
    assert cause["errorType"] == "PermanentUpstreamError" and "(400," in cause["errorMessage"]
    assert body["input"] == order_input()
    assert record["attributes"]["failedStep"]["StringValue"] == "Ship"
    assert w.partner.charges_by_order() == {"ord-7": 1}  # the charge stands; the record says what to undo
    assert w.drain("notification") == []


def test_a_notification_dependency_that_is_down_leaves_a_warning_and_the_order_succeeds(
    world: Callable[..., World], twins: list[FaultDependency]
) -> None:
    notifications = FaultDependency(api_key=API_KEY, seed=3).start()
    twins.append(notifications)
    notifications.set_profile("outage")
    circuit_service = unique_name("fulfilment")
    bus = create_circuit_bus(circuit_service, region=REGION)
    notify_dependency = unique_name("notifications")
    w = world(
        notify_env={
            "POWERTOOLS_SERVICE_NAME": circuit_service,
            "DEPENDENCY_NAME": notify_dependency,
            "DEPENDENCY_BASE_URL": notifications.base_url,
            "BREAKER_FAILURE_THRESHOLD": "2",
            "CIRCUIT_EVENTS_BUS_NAME": bus.name,
        }
    )

    execution = w.machine.run(order_input(), timeout=90)

    assert execution.status == "SUCCEEDED"
    # Two failed invocations (2 HTTP attempts, then 1: one fewer after a failed call) open the
    # notification circuit; the next attempts fail fast until the Notify retriers are spent, then the
    # Catch records a warning.
    assert errors(execution, "Notify") == [
        "TransientUpstreamError",
        "TransientUpstreamError",
        "DependencyUnavailableError",
        "DependencyUnavailableError",
        "DependencyUnavailableError",
    ]
    assert len(notifications.calls("/notifications")) == 3  # nothing sent while the circuit was open
    assert execution.states[-3:] == ["NotifyFailed", "RecordNotificationFailure", "OrderFulfilled"]
    [record] = w.drain("notification")
    body = record["body"]
    assert (body["kind"], body["severity"], body["failedStep"]) == (
        "NOTIFICATION_FAILED",
        "WARNING",
        "Notify",
    )
    assert body["error"] == "DependencyUnavailableError"
    assert body["input"] == order_input()  # enough to replay the notification
    assert w.drain("failure") == []
    # The order itself went through on the partner, once.
    assert w.partner.charges_by_order() == {"ord-7": 1}
    assert len(w.partner.calls("/shipments")) == 1
    # The opened notification circuit was announced once, for the controller.
    [event] = bus.published()
    assert event["detail"]["dependency"] == notify_dependency


def test_the_starter_turns_one_payment_event_into_one_fulfilled_order(
    world: Callable[..., World], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fan-out queue message (EventBridge envelope) -> workflow_starter -> the execution with real tasks."""
    w = world()
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", SOURCE_SERVICE)
    monkeypatch.setenv("STATE_MACHINE_ARN", w.machine.arn)
    monkeypatch.setenv("CIRCUIT_WAIT_SECONDS", "1")
    monkeypatch.setenv("CIRCUIT_WAIT_LIMIT_SECONDS", "60")
    starter = import_fresh("lambdas.workflow_starter.handler")
    event = {
        "version": "0",
        "id": "evt-1",
        "detail-type": "PaymentReceived",
        "source": f"{SOURCE_SERVICE}.ingestion",
        "time": "2026-11-25T09:31:01Z",
        "detail": PAYMENT,
    }
    message = {
        "messageId": "m-1",
        "receiptHandle": "rh",
        "body": json.dumps(event),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:fulfilment",
        "awsRegion": REGION,
    }
    lambda_context = FakeLambdaContext(function_name="fulfilment-starter")
    assert starter.handler({"Records": [message]}, lambda_context)["batchItemFailures"] == []
    name = starter.execution_name("PaymentReceived:pay-7")
    execution = w.machine.finish(
        f"{w.machine.arn.replace(':stateMachine:', ':execution:')}:{name}", timeout=60
    )
    redelivered = {**message, "messageId": "m-2"}  # EventBridge delivered the event a second time
    assert starter.handler({"Records": [redelivered]}, lambda_context)["batchItemFailures"] == []

    assert execution.status == "SUCCEEDED"
    assert w.partner.charges_by_order() == {"ord-7": 1}
    assert [c.idempotency_key for c in w.partner.calls("/charges")] == ["PaymentReceived:pay-7:Charge"]
    assert len(w.machine.sfn.list_executions(stateMachineArn=w.machine.arn)["executions"]) == 1


def test_a_re_run_of_a_failed_execution_does_not_charge_again(world: Callable[..., World]) -> None:
    """The failure record holds the input; re-running it (a new execution name) completes the order."""
    w = world()
    w.partner.enqueue(FaultDecision.passthrough(), FaultDecision.error(400))  # charged, shipment refused
    failed = w.machine.run(order_input(), name="PaymentReceived-pay-7", timeout=60)
    assert failed.status == "FAILED"
    [record] = w.drain("failure")

    rerun = w.machine.run(record["body"]["input"], name="PaymentReceived-pay-7-rerun-1", timeout=60)

    assert rerun.status == "SUCCEEDED"
    assert rerun.output["charge"]["result"]["replayed"] is True
    assert w.partner.charges_by_order() == {"ord-7": 1}
    assert {c.idempotency_key for c in w.partner.calls("/charges")} == {"PaymentReceived:pay-7:Charge"}


def test_a_replayed_payment_event_runs_a_new_execution_that_charges_and_ships_nothing_new(
    world: Callable[..., World], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An archive replay of a window holding the payment: the starter deliberately runs it again (new name)."""
    w = world()
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", SOURCE_SERVICE)
    monkeypatch.setenv("STATE_MACHINE_ARN", w.machine.arn)
    monkeypatch.setenv("CIRCUIT_WAIT_SECONDS", "1")
    monkeypatch.setenv("CIRCUIT_WAIT_LIMIT_SECONDS", "60")
    starter = import_fresh("lambdas.workflow_starter.handler")
    event = {
        "version": "0",
        "id": "evt-1",
        "detail-type": "PaymentReceived",
        "source": f"{SOURCE_SERVICE}.ingestion",
        "time": "2026-11-25T09:31:01Z",
        "detail": PAYMENT,
    }
    # EventBridge replays the archived event with a new id and the replay's name.
    replayed = {**event, "id": "evt-replayed-1", "replay-name": "events-archive-20261125T0900-1a2b3c"}
    names = []
    for message_id, body in (("m-1", event), ("m-2", replayed)):
        message = {
            "messageId": message_id,
            "receiptHandle": "rh",
            "body": json.dumps(body),
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:fulfilment",
            "awsRegion": REGION,
        }
        lambda_context = FakeLambdaContext(function_name="fulfilment-starter")
        assert starter.handler({"Records": [message]}, lambda_context)["batchItemFailures"] == []
        [started] = [
            e
            for e in w.machine.sfn.list_executions(stateMachineArn=w.machine.arn)["executions"]
            if e["name"] not in names
        ]
        names.append(started["name"])
        assert w.machine.finish(started["executionArn"], timeout=60).status == "SUCCEEDED"

    assert len(set(names)) == 2  # the replay ran again, as replays are meant to
    assert w.partner.charges_by_order() == {"ord-7": 1}
    assert len(w.partner._service.shipments) == len(w.partner._service.notifications) == 1
    for path in ("/charges", "/shipments", "/notifications"):
        # Both executions called the partner, with one key: the second call of each was a duplicate.
        calls = w.partner.calls(path)
        assert [c.status for c in calls] == [201, 201], path
        assert len({c.idempotency_key for c in calls}) == 1, path
