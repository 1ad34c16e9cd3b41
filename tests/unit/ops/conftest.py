"""Fixtures for the ops CLI tests: moto (in process), a stack shaped like the service's, CLI runner."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from ops.cli import main
from tests.unit.helpers import REGION
from tests.unit.ops.sqs_move_tasks import message_move_tasks
from tests.unit.ops.stack_fixture import DeployedStack, deploy


@dataclass
class Result:
    code: int
    out: str
    err: str


class Tty(io.StringIO):
    """stdin of an operator at a terminal, typing ``answer``."""

    def isatty(self) -> bool:
        return True


def run(*argv: str, answer: str | None = None) -> Result:
    """Run the CLI in process. ``answer``: what an operator types at the prompt (None: no terminal)."""
    stdin: io.StringIO = Tty(answer + "\n") if answer is not None else io.StringIO("")
    out, err = io.StringIO(), io.StringIO()
    code = main(["--region", REGION, *argv], stdin=stdin, stdout=out, stderr=err)
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def stack(aws: None) -> Iterator[DeployedStack]:
    with message_move_tasks():
        yield deploy(boto3.client("cloudformation", region_name=REGION))


@pytest.fixture
def sqs(aws: None) -> Any:
    return boto3.client("sqs", region_name=REGION)


def body_count(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message of a queue (consumed)."""
    messages: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not batch:
            return messages
        messages += batch
        for message in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
