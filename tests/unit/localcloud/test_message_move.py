"""The moto patch behind the local cloud's DLQ redrive: StartMessageMoveTask moves the DLQ's messages back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from localcloud.moto_patches.sqs_message_move import install_sqs_message_move_tasks

REGION = "eu-west-1"


@pytest.fixture
def sqs() -> Iterator[Any]:
    install_sqs_message_move_tasks()
    with mock_aws():
        yield boto3.client("sqs", region_name=REGION)


def _queue(sqs: Any, name: str, **attributes: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def test_a_move_task_returns_body_and_attributes_as_new_messages_and_reports_completed(sqs: Any) -> None:
    dlq_url, dlq_arn = _queue(sqs, "work-dlq")
    work_url, work_arn = _queue(
        sqs, "work", RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5})
    )
    attributes = {"QuarantineReason": {"DataType": "String", "StringValue": "rejected_by_dependency"}}
    sent = [
        sqs.send_message(QueueUrl=dlq_url, MessageBody=f"m{i}", MessageAttributes=attributes)["MessageId"]
        for i in range(3)
    ]

    handle = sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=work_arn)["TaskHandle"]

    (task,) = sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=10)["Results"]
    assert handle and task["Status"] == "COMPLETED"
    assert task["ApproximateNumberOfMessagesMoved"] == task["ApproximateNumberOfMessagesToMove"] == 3
    moved = sqs.receive_message(QueueUrl=work_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
    messages = moved["Messages"]
    assert sorted(m["Body"] for m in messages) == ["m0", "m1", "m2"]
    assert all(
        m["MessageAttributes"]["QuarantineReason"]["StringValue"] == "rejected_by_dependency"
        for m in messages
    )
    assert not {m["MessageId"] for m in messages} & set(sent)  # new messages, as SQS makes
    assert "Messages" not in sqs.receive_message(QueueUrl=dlq_url)
