"""Proof for the Step Functions test support in localcloud/moto_patches/ (the docstrings point here):
in-process Lambda functions (inprocess_lambda), aws-sdk member casing (aws_sdk_casing) and atomic
DynamoDB writes (dynamodb_atomic_writes). The local cloud's patches are proven by tests/e2e/test_deploy.py."""

from __future__ import annotations

import io
import json
import sys
import threading
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.core.config import default_user_config
from moto.server import ThreadedMotoServer

from localcloud import moto_patches
from localcloud.moto_patches import aws_sdk_casing, inprocess_lambda
from tests.statemachines import asl
from tests.statemachines.conftest import ACCOUNT_ID, REGION, ROLE_ARN, function_arn
from tests.statemachines.errors import DependencyUnavailableError


def create_and_run(sfn: Any, definition: dict[str, Any], payload: dict[str, Any]) -> tuple[dict, list[dict]]:
    arn = sfn.create_state_machine(
        name=f"wa-{uuid.uuid4().hex[:8]}", definition=json.dumps(definition), roleArn=ROLE_ARN
    )["stateMachineArn"]
    execution_arn = sfn.start_execution(
        stateMachineArn=arn, name=f"wa-{uuid.uuid4().hex[:8]}", input=json.dumps(payload)
    )["executionArn"]
    return asl.wait_for(sfn, execution_arn), asl.history(sfn, execution_arn)


def single_task(resource: str, **extra: Any) -> dict[str, Any]:
    return {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": resource, "End": True, **extra}}}


def test_plain_function_arn_resource_runs_the_handler_in_process(
    sfn: Any, register: Callable[..., Any]
) -> None:
    contexts: list[Any] = []

    def handler(event: Any, context: Any) -> Any:
        contexts.append(context)
        return {"doubled": event["n"] * 2}

    registration = register("doubler", handler, timeout_seconds=12)

    description, _ = create_and_run(sfn, single_task(function_arn("doubler")), {"n": 21})

    assert description["status"] == "SUCCEEDED"
    assert json.loads(description["output"]) == {"doubled": 42}  # plain-ARN form: output is the payload
    assert registration.invocations == [{"n": 21}]
    [context] = contexts
    assert context.function_name == "doubler"
    assert context.function_version == "$LATEST"
    assert context.invoked_function_arn == function_arn("doubler")
    assert uuid.UUID(context.aws_request_id)
    assert 0 < context.get_remaining_time_in_millis() <= 12_000


def test_handler_exception_surfaces_like_a_lambda_function_error(
    sfn: Any, register: Callable[..., Any]
) -> None:
    def handler(event: Any, context: Any) -> Any:
        raise DependencyUnavailableError("partner circuit open")

    register("failing", handler)
    definition = single_task(
        "arn:aws:states:::lambda:invoke",
        Parameters={"FunctionName": function_arn("failing"), "Payload.$": "$"},
        Retry=[
            {
                "ErrorEquals": ["DependencyUnavailableError"],
                "IntervalSeconds": 1,
                "MaxAttempts": 1,
                "MaxDelaySeconds": 1,
                "JitterStrategy": "FULL",
            }
        ],
    )

    description, events = create_and_run(sfn, definition, {})

    assert (description["status"], description["error"]) == ("FAILED", "DependencyUnavailableError")
    attempts = asl.task_attempts(events, "T")
    assert [a["error"] for a in attempts] == [
        "DependencyUnavailableError"
    ] * 2  # Retry matched the class name
    cause = json.loads(attempts[0]["cause"])
    assert cause["errorType"] == "DependencyUnavailableError"
    assert cause["errorMessage"] == "partner circuit open"
    assert not any("localcloud/moto_patches/inprocess_lambda.py" in frame for frame in cause["stackTrace"])
    assert any("in handler" in frame for frame in cause["stackTrace"])


def test_unregistered_functions_still_go_to_moto(sfn: Any) -> None:
    description, _ = create_and_run(
        sfn,
        single_task(
            "arn:aws:states:::lambda:invoke", Parameters={"FunctionName": function_arn("not-registered")}
        ),
        {},
    )

    assert description["status"] == "FAILED"
    assert description["error"] == "Lambda.ResourceNotFoundException"  # moto's own answer, untouched


def test_aws_sdk_tasks_need_step_functions_member_names(sfn: Any) -> None:
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="fn-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="q")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", "def handler(e, c):\n    return {}\n")
    lam = boto3.client("lambda", region_name=REGION)
    lam.create_function(
        FunctionName="fn",
        Runtime="python3.11",
        Role=role,
        Handler="index.handler",
        Code={"ZipFile": buffer.getvalue()},
    )
    mapping = lam.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName="fn")["UUID"]
    definition = single_task(
        "arn:aws:states:::aws-sdk:lambda:updateEventSourceMapping",
        Parameters={"Uuid": mapping, "Enabled": False},
        ResultSelector={"uuid.$": "$.Uuid", "state.$": "$.State"},
    )

    aws_sdk_casing.uninstall_aws_sdk_member_casing()
    try:
        unpatched, _ = create_and_run(sfn, definition, {})
    finally:
        aws_sdk_casing.install_aws_sdk_member_casing()
    patched, _ = create_and_run(sfn, definition, {})

    assert (unpatched["status"], unpatched["error"]) == ("FAILED", "States.Runtime")
    assert lam.get_event_source_mapping(UUID=mapping)["State"] == "Disabled"
    assert patched["status"] == "SUCCEEDED"
    assert json.loads(patched["output"]) == {"uuid": mapping, "state": "Disabled"}


@pytest.fixture
def threaded_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto server in a thread of this process, as the local cloud runs it (no mock_aws active)."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    monkeypatch.setenv("MOTO_PORT", str(port))  # moto's Step Functions reaches other services here
    endpoint = f"http://127.0.0.1:{port}"
    saved = dict(default_user_config["stepfunctions"])

    def set_config(config: dict[str, Any]) -> None:
        request = urllib.request.Request(
            f"{endpoint}/moto-api/config",
            data=json.dumps(config).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=5).read()

    set_config({"stepfunctions": {"execute_state_machine": True}})
    moto_patches.install_all()
    try:
        yield endpoint
    finally:
        set_config({"stepfunctions": saved})
        inprocess_lambda.clear_inprocess_functions()
        server.stop()


def test_works_under_a_threaded_moto_server_in_the_same_process(threaded_server: str) -> None:
    sfn = boto3.client("stepfunctions", region_name=REGION, endpoint_url=threaded_server)
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=threaded_server)
    queue_url = sqs.create_queue(QueueName="results")["QueueUrl"]
    inprocess_lambda.register_inprocess_function(
        "enrich",
        lambda event, context: {"orderId": event["orderId"], "ok": True},
        region=REGION,
        account_id=ACCOUNT_ID,
    )
    definition = {
        "StartAt": "Enrich",
        "States": {
            "Enrich": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": function_arn("enrich"), "Payload.$": "$"},
                "ResultSelector": {"result.$": "$.Payload"},
                "Next": "Publish",
            },
            "Publish": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage",
                "Parameters": {"QueueUrl": queue_url, "MessageBody.$": "$.result"},
                "End": True,
            },
        },
    }

    description, _ = create_and_run(sfn, definition, {"orderId": "o-5"})

    assert description["status"] == "SUCCEEDED", description.get("cause")
    [message] = sqs.receive_message(QueueUrl=queue_url).get("Messages", [])
    assert json.loads(message["Body"]) == {"orderId": "o-5", "ok": True}


@pytest.fixture
def rapid_thread_switching() -> Iterator[None]:
    """Switch threads every microsecond, so any unlocked check-then-write interleaves (quiet or busy)."""
    saved = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(saved)


def test_racing_conditional_writes_have_exactly_one_winner(
    dynamodb: Any, rapid_thread_switching: None
) -> None:
    dynamodb.create_table(
        TableName="elections",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    winners: dict[str, list[int]] = {}

    def claim(item: str, contender: int) -> None:
        try:
            dynamodb.update_item(
                TableName="elections",
                Key={"id": {"S": item}},
                UpdateExpression="SET #owner = :me",
                ConditionExpression="attribute_not_exists(#owner)",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":me": {"N": str(contender)}},
            )
        except ClientError as error:  # not client.exceptions: botocore builds those lazily, racily
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return
        winners.setdefault(item, []).append(contender)

    items = [f"election-{n}" for n in range(20)]
    for item in items:
        contenders = [threading.Thread(target=claim, args=(item, n)) for n in range(4)]
        for thread in contenders:
            thread.start()
        for thread in contenders:
            thread.join()

    assert {item: len(winners.get(item, [])) for item in items} == dict.fromkeys(items, 1)
    for item in items:
        owner = dynamodb.get_item(TableName="elections", Key={"id": {"S": item}})["Item"]["owner"]["N"]
        assert winners[item] == [int(owner)]
