"""The fan-out queue -> order_fulfilment starter, on moto: EventBridge envelopes in, one execution per key."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from types import ModuleType
from typing import Any

import boto3
import pytest

from lambdas.shared.env import ConfigurationError
from tests.unit.helpers import (
    REGION,
    FakeLambdaContext,
    import_fresh,
    log_records,
    metric_points,
    unique_name,
)

HANDLER = "lambdas.workflow_starter.handler"
NAME_RULE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
QUEUE_ARN = f"arn:aws:sqs:{REGION}:123456789012:fulfilment"
CIRCUIT_WAIT_SECONDS = 30
CIRCUIT_WAIT_LIMIT_SECONDS = 14_700
NOW = 1_800_000_000.0
PAYMENT = {
    "paymentId": "pay-1",
    "orderId": "ord-1",
    "amountCents": 1250,
    "currency": "EUR",
    "method": "card",
    "receivedAt": "2026-11-25T09:31:00Z",
}


def envelope(source: str, detail: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "PaymentReceived",
        "source": source,
        "account": "123456789012",
        "time": "2026-11-25T09:31:01Z",
        "region": REGION,
        "resources": [],
        "detail": PAYMENT if detail is None else detail,
    }
    event.update(overrides)
    return event


def record(body: Any, message_id: str | None = None) -> dict[str, Any]:
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": "rh",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": REGION,
    }


class Starter:
    def __init__(self, module: ModuleType, sfn: Any, arn: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.source = f"{module.settings.service_name}.ingestion"  # the default: the service's ingestion
        self.module = module
        self.sfn = sfn
        self.arn = arn
        self.capsys = capsys

    def invoke(self, *records: dict[str, Any]) -> list[str]:
        response = self.module.handler({"Records": list(records)}, FakeLambdaContext(function_name="starter"))
        return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]

    def executions(self) -> dict[str, dict[str, Any]]:
        listed = self.sfn.list_executions(stateMachineArn=self.arn)["executions"]
        return {
            e["name"]: json.loads(self.sfn.describe_execution(executionArn=e["executionArn"])["input"])
            for e in listed
        }

    def output(self) -> str:
        return self.capsys.readouterr().out


@pytest.fixture
def make_starter(
    aws: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Starter]:
    def factory(**env: str) -> Starter:
        sfn = boto3.client("stepfunctions", region_name=REGION)
        arn = sfn.create_state_machine(
            name=f"order-fulfilment-{uuid.uuid4().hex[:8]}",
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
            roleArn="arn:aws:iam::123456789012:role/sfn",
        )["stateMachineArn"]
        monkeypatch.setenv("STATE_MACHINE_ARN", arn)
        monkeypatch.setenv("CIRCUIT_WAIT_SECONDS", str(CIRCUIT_WAIT_SECONDS))
        monkeypatch.setenv("CIRCUIT_WAIT_LIMIT_SECONDS", str(CIRCUIT_WAIT_LIMIT_SECONDS))
        # A fresh service name per test: Powertools loggers of one service share one stream.
        monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", unique_name("resilient-orders"))
        monkeypatch.delenv("EVENT_SOURCE", raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return Starter(import_fresh(HANDLER), sfn, arn, capsys)

    return factory


# ---------------------------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "key",
    [
        "PaymentReceived:pay-1",
        "PaymentReceived:pay-1#replay:fix-2026-11-25",
        "a" * 80,
        "order 42/2026#1",
        "ü" * 10,
        "x" * 500,
        "<>{}[]?*",
        "-" * 100,
    ],
)
def test_execution_names_follow_the_step_functions_rules(
    make_starter: Callable[..., Starter], key: str
) -> None:
    starter = make_starter()
    name = starter.module.execution_name(key)
    assert NAME_RULE.match(name), name
    assert starter.module.execution_name(key) == name  # deterministic: a redelivery maps to the same name


def test_safe_keys_are_kept_readable_and_unsafe_ones_get_a_digest(
    make_starter: Callable[..., Starter],
) -> None:
    starter = make_starter()
    execution_name = starter.module.execution_name
    assert execution_name("order-42_retry") == "order-42_retry"
    long_name = execution_name("a" * 81)
    assert len(long_name) == 80 and long_name.startswith("a" * 55)
    assert execution_name("a b") != execution_name("a/b")  # keys that sanitize alike still differ
    assert execution_name("PaymentReceived:pay-1").startswith("PaymentReceived-pay-1-")
    with pytest.raises(ValueError):
        execution_name("")


# ---------------------------------------------------------------------------------------------- events


def test_a_payment_received_event_starts_one_execution_named_after_its_key(
    make_starter: Callable[..., Starter],
) -> None:
    starter = make_starter()
    starter.module.clock = lambda: NOW
    event = envelope(starter.source)
    message = record(event, message_id="m-1")

    assert starter.invoke(message) == []

    name = starter.module.execution_name("PaymentReceived:pay-1")
    assert starter.executions() == {
        name: {
            "idempotencyKey": "PaymentReceived:pay-1",
            "messageId": "m-1",
            "event": {
                "id": event["id"],
                "detailType": "PaymentReceived",
                "source": starter.source,
                "time": "2026-11-25T09:31:01Z",
            },
            # What the Charge/Ship/Notify tasks read (lambdas.fulfilment.tasks.FulfilmentOrder).
            "order": {"orderId": "ord-1", "amountCents": 1250, "currency": "EUR", "paymentId": "pay-1"},
            # How Charge and Ship wait out an open circuit (order_fulfilment.asl.json), from the environment.
            "circuitWait": {"seconds": CIRCUIT_WAIT_SECONDS, "until": NOW + CIRCUIT_WAIT_LIMIT_SECONDS},
        }
    }
    [started] = [r for r in log_records(starter.output()) if r["message"] == "started"]
    assert (started["message_id"], started["event_id"], started["execution_name"]) == (
        "m-1",
        event["id"],
        name,
    )


def test_a_redelivered_event_does_not_start_the_work_twice(make_starter: Callable[..., Starter]) -> None:
    starter = make_starter()
    event = envelope(starter.source)

    assert starter.invoke(record(event, message_id="m-1")) == []
    assert starter.invoke(record(event, message_id="m-1")) == []  # SQS redelivery: same message
    # EventBridge at-least-once: the same event as a second message (and a second event id).
    assert starter.invoke(record(envelope(starter.source), message_id="m-2")) == []

    assert list(starter.executions()) == [starter.module.execution_name("PaymentReceived:pay-1")]
    # The second message (other input, same name) is refused with ExecutionAlreadyExists and counted; the
    # exact repeat is answered with the existing execution (AWS does so while it runs, moto always).
    assert len(metric_points(starter.output(), "DuplicateEvents")) >= 1


def test_a_replayed_event_runs_once_more_under_its_own_name(make_starter: Callable[..., Starter]) -> None:
    starter = make_starter()
    original = envelope(starter.source)
    replayed = envelope(starter.source, **{"id": str(uuid.uuid4()), "replay-name": "fix-2026-11-25"})

    assert starter.invoke(record(original)) == []
    assert starter.invoke(record(replayed, message_id="m-replay")) == []
    assert starter.invoke(record(replayed, message_id="m-replay")) == []  # the replay, redelivered

    executions = starter.executions()
    replay_name = starter.module.execution_name("PaymentReceived:pay-1#replay:fix-2026-11-25")
    assert set(executions) == {starter.module.execution_name("PaymentReceived:pay-1"), replay_name}
    assert executions[replay_name]["idempotencyKey"] == "PaymentReceived:pay-1#replay:fix-2026-11-25"
    assert executions[replay_name]["event"]["replayName"] == "fix-2026-11-25"


def malformed(source: str) -> dict[str, Any]:
    cancelled = {
        "orderId": "ord-1",
        "customerId": "c-1",
        "reason": "out_of_stock",
        "cancelledAt": "2026-11-25T09:30:00Z",
    }
    return {
        "not JSON": "{not json",
        "not an envelope (a raw order body)": {"orderId": "ord-1", "amountCents": 1250, "currency": "EUR"},
        "wrong source": envelope("someone-else.ingestion"),
        "unknown detail-type": envelope(source, **{"detail-type": "OrderShipped"}),
        "invalid detail": envelope(source, {**PAYMENT, "amountCents": "12.50"}),
        "extra detail field": envelope(source, {**PAYMENT, "discount": 5}),
        "another contract": envelope(source, cancelled, **{"detail-type": "OrderCancelled"}),
    }


@pytest.mark.parametrize("kind", list(malformed("any")))
def test_malformed_events_fail_their_record_for_the_dlq_and_are_logged(
    make_starter: Callable[..., Starter], kind: str
) -> None:
    starter = make_starter()
    good = record(envelope(starter.source), message_id="m-good")
    body = malformed(starter.source)[kind]
    bad = record(body, message_id="m-bad")

    assert starter.invoke(good, bad) == ["m-bad"]  # every receive fails it: the redrive moves it to the DLQ

    assert list(starter.executions()) == [starter.module.execution_name("PaymentReceived:pay-1")]
    out = starter.output()
    [logged] = [r for r in log_records(out) if r["message"].startswith("invalid event")]
    assert logged["message_id"] == "m-bad"
    assert logged.get("event_id") == (body.get("id") if isinstance(body, dict) else None)  # None: not logged
    assert logged["reason"]
    assert len(metric_points(out, "InvalidEvents")) == 1


def test_a_batch_of_only_malformed_events_is_answered_record_by_record(
    make_starter: Callable[..., Starter],
) -> None:
    """Every record failed (each goes on to the DLQ), but the invocation itself did not: no raise."""
    starter = make_starter()
    malformed = [record("{not json"), record(envelope("x"))]

    assert starter.invoke(*malformed) == [r["messageId"] for r in malformed]
    assert starter.executions() == {}


def test_a_deeply_nested_body_is_malformed_not_a_crash(make_starter: Callable[..., Starter]) -> None:
    starter = make_starter()
    nested = record("[" * 100_000 + "]" * 100_000)

    assert starter.invoke(nested) == [nested["messageId"]]
    [error] = [
        r for r in log_records(starter.output()) if r["level"] == "ERROR" and "invalid event" in r["message"]
    ]
    assert "nested too deeply" in error["reason"]


def test_step_functions_errors_fail_the_records_for_a_retry(make_starter: Callable[..., Starter]) -> None:
    starter = make_starter(STATE_MACHINE_ARN=f"arn:aws:states:{REGION}:123456789012:stateMachine:missing")

    records = [
        record(envelope(starter.source)),
        record(envelope(starter.source, {**PAYMENT, "paymentId": "pay-2"})),
    ]

    assert starter.invoke(*records) == [r["messageId"] for r in records]
    warnings = [r for r in log_records(starter.output()) if r["level"] == "WARNING"]
    assert {r["message"] for r in warnings} == {"could not start: the record is retried"}
    assert all("StateMachineDoesNotExist" in r["error"] for r in warnings)


def test_the_accepted_source_can_be_overridden(make_starter: Callable[..., Starter]) -> None:
    starter = make_starter(EVENT_SOURCE="other-service.ingestion")

    assert starter.module.settings.event_source == "other-service.ingestion"
    assert starter.invoke(record(envelope("other-service.ingestion"))) == []
    bad = record(envelope(starter.source))  # the default source is no longer accepted
    assert starter.invoke(bad) == [bad["messageId"]]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STATE_MACHINE_ARN", None),
        ("STATE_MACHINE_ARN", "not-an-arn"),
        ("POWERTOOLS_SERVICE_NAME", None),
        ("CIRCUIT_WAIT_SECONDS", None),
        ("CIRCUIT_WAIT_SECONDS", "0"),
        ("CIRCUIT_WAIT_LIMIT_SECONDS", "soon"),
        ("CIRCUIT_WAIT_LIMIT_SECONDS", str(24 * 3600)),  # beyond what the machine's timeout is sized for
    ],
)
def test_misconfiguration_fails_at_init_with_the_variable_name(
    make_starter: Callable[..., Starter], monkeypatch: pytest.MonkeyPatch, variable: str, value: str | None
) -> None:
    make_starter()
    if value is None:
        monkeypatch.delenv(variable)
    else:
        monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigurationError) as caught:
        import_fresh(HANDLER)

    assert variable in str(caught.value)
