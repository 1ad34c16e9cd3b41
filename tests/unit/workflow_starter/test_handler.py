"""The SQS -> order_fulfilment starter, on moto: one execution per idempotency key, partial batch failures."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from lambdas.workflow_starter import handler as starter

REGION = "eu-west-1"
NAME_RULE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
QUEUE_ARN = f"arn:aws:sqs:{REGION}:123456789012:orders"


def record(body: Any, key: str | None = None, message_id: str | None = None) -> dict[str, Any]:
    attributes = {"IdempotencyKey": {"stringValue": key, "dataType": "String"}} if key is not None else {}
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": "rh",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": attributes,
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": REGION,
    }


@pytest.fixture
def sfn(aws: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    client = boto3.client("stepfunctions", region_name=REGION)
    arn = client.create_state_machine(
        name="order-fulfilment",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    monkeypatch.setenv("STATE_MACHINE_ARN", arn)
    starter._client.cache_clear()
    yield client
    starter._client.cache_clear()


def invoke(*records: dict[str, Any]) -> list[str]:
    response = starter.handler({"Records": list(records)}, None)  # type: ignore[arg-type]
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


def executions(sfn: Any) -> dict[str, dict[str, Any]]:
    arn = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]
    listed = sfn.list_executions(stateMachineArn=arn)["executions"]
    return {
        e["name"]: json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"]) for e in listed
    }


@pytest.mark.parametrize(
    "key",
    ["order-42", "a" * 80, "order 42/2026#1", "ü" * 10, "x" * 500, "a b", "a/b", "<>{}[]?*", "-" * 100],
)
def test_execution_names_follow_the_step_functions_rules(key: str) -> None:
    name = starter.execution_name(key)
    assert NAME_RULE.match(name), name
    assert starter.execution_name(key) == name  # deterministic: a redelivery maps to the same name


def test_safe_keys_are_kept_readable_and_unsafe_ones_get_a_digest() -> None:
    assert starter.execution_name("order-42_retry") == "order-42_retry"
    assert starter.execution_name("a" * 80) == "a" * 80
    long_name = starter.execution_name("a" * 81)
    assert len(long_name) == 80 and long_name.startswith("a" * 55)
    # Keys that sanitize alike still get different names.
    assert starter.execution_name("a b") != starter.execution_name("a/b")
    assert starter.execution_name("a b").startswith("a-b-")
    with pytest.raises(ValueError):
        starter.execution_name("")


def test_each_message_starts_one_execution_named_after_its_key(sfn: Any) -> None:
    with_key = record({"orderId": "o-1"}, key="order 1/web")
    without_key = record({"orderId": "o-2"}, message_id="0b3c2a3e-5a5f-4a4a-9c1d-2c1f5b1e7a10")

    assert invoke(with_key, without_key) == []

    started = executions(sfn)
    assert set(started) == {starter.execution_name("order 1/web"), "0b3c2a3e-5a5f-4a4a-9c1d-2c1f5b1e7a10"}
    assert started[starter.execution_name("order 1/web")] == {
        "idempotencyKey": "order 1/web",
        "messageId": with_key["messageId"],
        "order": {"orderId": "o-1"},
    }
    assert started["0b3c2a3e-5a5f-4a4a-9c1d-2c1f5b1e7a10"]["idempotencyKey"] == without_key["messageId"]


def test_a_redelivered_message_does_not_start_the_work_twice(sfn: Any) -> None:
    message = record({"orderId": "o-1"}, key="order-1")

    assert invoke(message) == []
    assert invoke(message) == []  # same name, same input: Step Functions returns the same execution
    assert invoke(record({"orderId": "o-1"}, key="order-1")) == []  # new message id, same key: already exists

    assert list(executions(sfn)) == ["order-1"]


def test_only_records_that_could_not_be_started_are_returned(sfn: Any) -> None:
    good = record({"orderId": "o-1"}, key="order-1")
    poison = record("{not json", key="order-2")

    assert invoke(good, poison) == [poison["messageId"]]
    assert list(executions(sfn)) == ["order-1"]


def test_step_functions_errors_fail_the_records_for_a_retry(
    sfn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_MACHINE_ARN", "arn:aws:states:eu-west-1:123456789012:stateMachine:missing")
    first, second = record({"orderId": "o-1"}, key="order-1"), record({"orderId": "o-2"}, key="order-2")

    # Every record failed: Powertools raises, so Lambda returns the whole batch to the queue.
    with pytest.raises(BatchProcessingError) as raised:
        invoke(first, second)
    assert "StateMachineDoesNotExist" in str(raised.value)


def test_missing_configuration_fails_the_whole_batch(sfn: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STATE_MACHINE_ARN")

    with pytest.raises(starter.ConfigurationError):
        invoke(record({"orderId": "o-1"}))
