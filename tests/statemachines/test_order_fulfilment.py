"""order_fulfilment.asl.json executed on moto: retries, exhausted retries, permanent errors, failure records."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from localcloud.moto_patches.inprocess_lambda import LambdaServiceFault
from tests.statemachines import asl
from tests.statemachines.conftest import Machine, Script, function_arn, sleep_then
from tests.statemachines.errors import (
    CircuitWaitExpiredError,
    DependencyUnavailableError,
    PermanentUpstreamError,
    TransientUpstreamError,
)
from tests.unit.helpers import FakeLambdaContext, import_fresh

ORDER = {"orderId": "order-42", "customerId": "c-7", "amountCents": 1999}
INPUT = {"order": ORDER, "idempotencyKey": "order-42"}


@pytest.fixture
def queues(sqs: Any) -> dict[str, str]:
    return {
        "failure": sqs.create_queue(QueueName="fulfilment-failures")["QueueUrl"],
        "notification": sqs.create_queue(QueueName="notification-failures")["QueueUrl"],
    }


@pytest.fixture
def fulfilment(create_machine: Callable[..., Machine], queues: dict[str, str]) -> Callable[..., Machine]:
    def _create(**compress_kwargs: Any) -> Machine:
        return create_machine(
            asl.ORDER_FULFILMENT,
            {
                "ChargeFunctionArn": function_arn("charge"),
                "ShipFunctionArn": function_arn("ship"),
                "NotifyFunctionArn": function_arn("notify"),
                "FailureQueueUrl": queues["failure"],
                "NotificationFailureQueueUrl": queues["notification"],
            },
            **compress_kwargs,
        )

    return _create


def drain(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    messages = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
    ).get("Messages", [])
    return [{"body": json.loads(m["Body"]), "attributes": m.get("MessageAttributes", {})} for m in messages]


def handlers(register: Callable[..., Any], charge: Script, ship: Script, notify: Script) -> None:
    register("charge", charge)
    register("ship", ship)
    register("notify", notify)


def test_happy_path_runs_each_step_once_in_order(
    fulfilment: Callable[..., Machine], register: Callable[..., Any], sqs: Any, queues: dict[str, str]
) -> None:
    charge, ship, notify = (
        Script({"chargeId": "ch-1"}),
        Script({"shipmentId": "sh-1"}),
        Script({"sent": True}),
    )
    handlers(register, charge, ship, notify)

    execution = fulfilment().run(INPUT, name="order-42")

    assert execution.status == "SUCCEEDED"
    assert [s for s in execution.states if s in ("Charge", "Ship", "Notify")] == ["Charge", "Ship", "Notify"]
    assert (charge.calls, ship.calls, notify.calls) == (1, 1, 1)
    assert charge.events[0] == {
        "step": "Charge",
        "order": ORDER,
        "idempotencyKey": "order-42",
        "executionName": "order-42",
        "attempt": 0,
        "circuitWaitUntil": None,  # the input has no circuitWait
    }
    # Later steps get the earlier steps' results, not the Lambda invoke envelope.
    assert ship.events[0]["charge"] == {"chargeId": "ch-1"}
    assert notify.events[0]["shipment"] == {"shipmentId": "sh-1"}
    assert execution.output["charge"]["result"] == {"chargeId": "ch-1"}
    assert not any(e["type"] in ("TaskFailed", "TaskTimedOut") for e in execution.events)
    assert drain(sqs, queues["failure"]) == []
    assert drain(sqs, queues["notification"]) == []


def test_transient_errors_are_retried_until_success(
    fulfilment: Callable[..., Machine], register: Callable[..., Any], sqs: Any, queues: dict[str, str]
) -> None:
    charge = Script(
        TransientUpstreamError("503 from partner"), TransientUpstreamError("429"), {"chargeId": "ch-1"}
    )
    handlers(register, charge, Script({}), Script({}))

    execution = fulfilment().run(INPUT)

    assert execution.status == "SUCCEEDED"
    attempts = execution.attempts("Charge")
    assert [a.get("error") for a in attempts] == ["TransientUpstreamError", "TransientUpstreamError", None]
    assert attempts[-1]["succeeded"]
    # The handler sees which attempt it is ($$.State.RetryCount) and the same idempotency inputs each time.
    assert [e["attempt"] for e in charge.events] == [0, 1, 2]
    assert {e["executionName"] for e in charge.events} == {execution.description["name"]}
    assert execution.states.count("Charge") == 1  # retries happen inside the state, not by re-entering it
    assert drain(sqs, queues["failure"]) == []


def test_exhausted_retries_record_the_failure_then_fail(
    fulfilment: Callable[..., Machine], register: Callable[..., Any], sqs: Any, queues: dict[str, str]
) -> None:
    machine = fulfilment()
    ship_retrier = next(
        r
        for r in machine.definition["States"]["Ship"]["Retry"]
        if "TransientUpstreamError" in r["ErrorEquals"]
    )
    notify = Script({})
    handlers(register, Script({"chargeId": "ch-1"}), Script(TransientUpstreamError("partner 503")), notify)

    execution = machine.run(INPUT, name="order-42-attempt")

    assert execution.status == "FAILED"
    assert execution.error == "TransientUpstreamError"  # the original error, not a generic one
    assert len(execution.attempts("Ship")) == 1 + ship_retrier["MaxAttempts"]
    assert notify.calls == 0
    assert execution.states[-3:] == ["ShipFailed", "RecordFailure", "FulfilmentFailed"]

    [record] = drain(sqs, queues["failure"])
    body = record["body"]
    assert body["kind"] == "ORDER_FULFILMENT_FAILED"
    assert body["failedStep"] == "Ship"
    assert body["error"] == "TransientUpstreamError"
    assert json.loads(body["cause"])["errorMessage"] == "partner 503"
    assert body["input"] == INPUT
    assert body["executionArn"] == execution.arn
    assert body["executionName"] == "order-42-attempt"
    assert record["attributes"]["error"]["StringValue"] == "TransientUpstreamError"
    assert record["attributes"]["failedStep"]["StringValue"] == "Ship"
    assert drain(sqs, queues["notification"]) == []


@pytest.mark.parametrize(
    "error", [PermanentUpstreamError("400 invalid card"), ValueError("not retried either")]
)
def test_errors_without_a_retrier_are_not_retried(
    error: Exception,
    fulfilment: Callable[..., Machine],
    register: Callable[..., Any],
    sqs: Any,
    queues: dict[str, str],
) -> None:
    ship = Script({})
    handlers(register, Script(error), ship, Script({}))

    execution = fulfilment().run(INPUT)

    assert execution.status == "FAILED"
    assert execution.error == type(error).__name__
    assert len(execution.attempts("Charge")) == 1
    assert ship.calls == 0
    [record] = drain(sqs, queues["failure"])
    assert (record["body"]["failedStep"], record["body"]["error"]) == ("Charge", type(error).__name__)


def test_dependency_unavailable_uses_its_own_retrier(
    fulfilment: Callable[..., Machine], register: Callable[..., Any]
) -> None:
    charge = Script(DependencyUnavailableError("circuit open"), {"chargeId": "ch-1"})
    handlers(register, charge, Script({}), Script({}))

    execution = fulfilment().run(INPUT)

    assert execution.status == "SUCCEEDED"
    assert [a.get("error") for a in execution.attempts("Charge")] == ["DependencyUnavailableError", None]


def _circuit_retrier(machine: Machine, step: str) -> dict[str, Any]:
    return next(
        r
        for r in machine.definition["States"][step]["Retry"]
        if "DependencyUnavailableError" in r["ErrorEquals"]
    )


def test_an_open_circuit_that_outlasts_the_retrier_is_waited_out_not_recorded(
    fulfilment: Callable[..., Machine], register: Callable[..., Any], sqs: Any, queues: dict[str, str]
) -> None:
    """A long outage: the controller keeps the circuit open past every retrier; the execution waits one
    recovery window at a time and carries on when the circuit lets the call through."""
    machine = fulfilment()
    runs = 1 + _circuit_retrier(machine, "Charge")["MaxAttempts"]  # one retrier's worth of attempts
    open_circuit = DependencyUnavailableError("circuit is OPEN; next probe in 1.0s")
    charge = Script(*[open_circuit] * (2 * runs + 1), {"chargeId": "ch-1"})  # through two waits
    ship = Script(*[open_circuit] * runs, {"shipmentId": "sh-1"})  # through one
    handlers(register, charge, ship, Script({}))
    waiting = {**INPUT, "circuitWait": {"seconds": 1, "until": time.time() + 3600}}

    execution = machine.run(waiting, name="order-42-waits")

    assert execution.status == "SUCCEEDED"
    assert [a.get("error") for a in execution.attempts("Charge")] == ["DependencyUnavailableError"] * (
        2 * runs + 1
    ) + [None]
    assert execution.states.count("ChargeCircuitWait") == 2
    assert execution.states.count("ShipCircuitWait") == 1
    assert all(e["circuitWaitUntil"] == waiting["circuitWait"]["until"] for e in charge.events + ship.events)
    assert drain(sqs, queues["failure"]) == []


def test_an_open_circuit_past_the_deadline_is_recorded_and_never_waited_on_again(
    fulfilment: Callable[..., Machine], register: Callable[..., Any], sqs: Any, queues: dict[str, str]
) -> None:
    machine = fulfilment()
    runs = 1 + _circuit_retrier(machine, "Charge")["MaxAttempts"]
    charge = Script(
        *[DependencyUnavailableError("circuit is OPEN")] * runs, CircuitWaitExpiredError("expired")
    )
    ship = Script({})
    handlers(register, charge, ship, Script({}))

    execution = machine.run({**INPUT, "circuitWait": {"seconds": 1, "until": time.time() + 3600}})

    assert execution.status == "FAILED"
    assert execution.error == "CircuitWaitExpiredError"
    assert len(execution.attempts("Charge")) == runs + 1  # no retrier matches the expiry
    assert execution.states.count("ChargeCircuitWait") == 1
    assert ship.calls == 0
    [record] = drain(sqs, queues["failure"])
    assert (record["body"]["failedStep"], record["body"]["error"]) == ("Charge", "CircuitWaitExpiredError")


def test_without_a_circuit_wait_an_open_circuit_is_recorded_after_the_retrier(
    fulfilment: Callable[..., Machine], register: Callable[..., Any], sqs: Any, queues: dict[str, str]
) -> None:
    """An execution started by hand (or by an older starter) has no deadline: it never waits."""
    machine = fulfilment()
    runs = 1 + _circuit_retrier(machine, "Charge")["MaxAttempts"]
    handlers(register, Script(DependencyUnavailableError("circuit is OPEN")), Script({}), Script({}))

    execution = machine.run(INPUT)

    assert execution.status == "FAILED"
    assert len(execution.attempts("Charge")) == runs
    assert "ChargeCircuitWait" not in execution.states
    [record] = drain(sqs, queues["failure"])
    assert (record["body"]["failedStep"], record["body"]["error"]) == ("Charge", "DependencyUnavailableError")
    assert record["body"]["input"] == INPUT


def test_lambda_service_throttling_is_retried(
    fulfilment: Callable[..., Machine], register: Callable[..., Any]
) -> None:
    charge = Script(LambdaServiceFault("TooManyRequestsException", status_code=429), {"chargeId": "ch-1"})
    handlers(register, charge, Script({}), Script({}))

    execution = fulfilment().run(INPUT)

    assert execution.status == "SUCCEEDED"
    assert [a.get("error") for a in execution.attempts("Charge")] == ["Lambda.TooManyRequestsException", None]


def test_task_timeout_is_retried(fulfilment: Callable[..., Machine], register: Callable[..., Any]) -> None:
    # The first invocation outlives the (compressed) Task timeout: States.Timeout, then a retry succeeds.
    charge = Script(sleep_then(2.5, {"late": True}), {"chargeId": "ch-1"})
    handlers(register, charge, Script({}), Script({}))

    execution = fulfilment(task_timeouts={"Charge": 1}).run(INPUT)

    assert execution.status == "SUCCEEDED"
    assert [a.get("error") for a in execution.attempts("Charge")] == ["States.Timeout", None]
    assert execution.output["charge"]["result"] == {"chargeId": "ch-1"}


def test_failed_notification_is_recorded_but_the_order_succeeds(
    fulfilment: Callable[..., Machine], register: Callable[..., Any], sqs: Any, queues: dict[str, str]
) -> None:
    machine = fulfilment()
    notify_retrier = next(
        r
        for r in machine.definition["States"]["Notify"]["Retry"]
        if "TransientUpstreamError" in r["ErrorEquals"]
    )
    handlers(
        register,
        Script({"chargeId": "ch-1"}),
        Script({"shipmentId": "sh-1"}),
        Script(TransientUpstreamError("smtp down")),
    )

    execution = machine.run(INPUT)

    assert execution.status == "SUCCEEDED"
    assert len(execution.attempts("Notify")) == 1 + notify_retrier["MaxAttempts"]
    assert execution.states[-3:] == ["NotifyFailed", "RecordNotificationFailure", "OrderFulfilled"]
    [record] = drain(sqs, queues["notification"])
    assert record["body"]["severity"] == "WARNING"
    assert (record["body"]["failedStep"], record["body"]["error"]) == ("Notify", "TransientUpstreamError")
    assert record["body"]["input"] == INPUT
    assert drain(sqs, queues["failure"]) == []


def test_invalid_input_is_recorded_not_lost(
    fulfilment: Callable[..., Machine], register: Callable[..., Any], sqs: Any, queues: dict[str, str]
) -> None:
    charge = Script({})
    handlers(register, charge, Script({}), Script({}))

    execution = fulfilment().run({"order": ORDER})  # no idempotencyKey

    assert execution.status == "FAILED"
    assert execution.error == "ValidationError"
    assert charge.calls == 0
    [record] = drain(sqs, queues["failure"])
    assert (record["body"]["failedStep"], record["body"]["error"]) == ("ValidateInput", "ValidationError")


def test_unrecordable_failure_fails_under_its_own_name(
    create_machine: Callable[..., Machine], register: Callable[..., Any], queues: dict[str, str]
) -> None:
    machine = create_machine(
        asl.ORDER_FULFILMENT,
        {
            "ChargeFunctionArn": function_arn("charge"),
            "ShipFunctionArn": function_arn("ship"),
            "NotifyFunctionArn": function_arn("notify"),
            "FailureQueueUrl": queues["failure"].replace("fulfilment-failures", "no-such-queue"),
            "NotificationFailureQueueUrl": queues["notification"],
        },
    )
    handlers(register, Script(PermanentUpstreamError("400")), Script({}), Script({}))

    execution = machine.run(INPUT)

    assert execution.status == "FAILED"
    assert execution.error == "FailureNotRecorded"
    record_attempts = execution.attempts("RecordFailure")
    assert (
        len(record_attempts) == 1 + machine.definition["States"]["RecordFailure"]["Retry"][0]["MaxAttempts"]
    )
    assert all(a.get("error", "").startswith("SQS.") for a in record_attempts)


def test_the_workflow_starter_runs_the_order_once_per_key(
    fulfilment: Callable[..., Machine],
    register: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fan-out message (EventBridge envelope) -> lambdas/workflow_starter -> this state machine, once."""
    machine = fulfilment()
    charge = Script({"chargeId": "ch-1"})
    handlers(register, charge, Script({}), Script({}))
    monkeypatch.setenv("STATE_MACHINE_ARN", machine.arn)
    monkeypatch.setenv("CIRCUIT_WAIT_SECONDS", "1")
    monkeypatch.setenv("CIRCUIT_WAIT_LIMIT_SECONDS", "60")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "resilient-orders")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "ResilientServerlessTest")
    starter = import_fresh("lambdas.workflow_starter.handler")  # the environment is read at init
    event = {
        "version": "0",
        "id": "evt-1",
        "detail-type": "PaymentReceived",
        "source": "resilient-orders.ingestion",
        "detail": {
            "paymentId": "pay-42",
            "orderId": "order-42",
            "amountCents": 1999,
            "currency": "EUR",
            "method": "card",
            "receivedAt": "2026-11-25T09:31:00Z",
        },
    }
    message = {
        "messageId": "m-1",
        "receiptHandle": "rh",
        "body": json.dumps(event),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:fulfilment",
        "awsRegion": "eu-west-1",
    }
    context = FakeLambdaContext(function_name="fulfilment-starter")

    assert starter.handler({"Records": [message]}, context)["batchItemFailures"] == []
    name = starter.execution_name("PaymentReceived:pay-42")
    execution = machine.finish(f"{machine.arn.replace(':stateMachine:', ':execution:')}:{name}")
    redelivered = {**message, "attributes": {"ApproximateReceiveCount": "2"}}
    assert starter.handler({"Records": [redelivered]}, context)["batchItemFailures"] == []

    assert execution.status == "SUCCEEDED"
    assert charge.calls == 1
    assert charge.events[0]["idempotencyKey"] == "PaymentReceived:pay-42"
    assert charge.events[0]["order"] == {
        "orderId": "order-42",
        "amountCents": 1999,
        "currency": "EUR",
        "paymentId": "pay-42",
    }
    assert len(machine.sfn.list_executions(stateMachineArn=machine.arn)["executions"]) == 1
