"""Throttling drill: reserved concurrency 0 for a bounded time, always restored."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import boto3
import pytest

from ops.aws import Aws
from ops.console import Console
from ops.drill import throttle
from ops.errors import Aborted, UsageError
from tests.unit.helpers import REGION
from tests.unit.ops.conftest import run


def _function(reserved: int | None) -> tuple[Any, str]:
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="drill", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("handler.py", "def handler(event, context):\n    return None\n")
    client = boto3.client("lambda", region_name=REGION)
    client.create_function(
        FunctionName="consumer", Runtime="python3.12", Role=role, Handler="handler.handler",
        Code={"ZipFile": archive.getvalue()},
    )  # fmt: skip
    if reserved is not None:
        client.put_function_concurrency(FunctionName="consumer", ReservedConcurrentExecutions=reserved)
    return client, "consumer"


def _console(answer_yes: bool = True) -> Console:
    return Console(stdin=io.StringIO(""), stdout=io.StringIO(), stderr=io.StringIO(), assume_yes=answer_yes)


@pytest.mark.parametrize("reserved", [5, None])
def test_throttles_for_the_duration_then_restores_the_setting(aws: None, reserved: int | None) -> None:
    client, name = _function(reserved)
    during: list[Any] = []

    def sleep(seconds: float) -> None:
        during.append(
            (seconds, client.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions"))
        )

    assert throttle(Aws.connect(region=REGION), _console(), name, 30, sleep=sleep) == 0
    assert during == [(30, 0)]
    assert client.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions") == reserved


def test_an_interrupted_drill_still_restores(aws: None) -> None:
    client, name = _function(5)

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        throttle(Aws.connect(region=REGION), _console(), name, 30, sleep=interrupted)
    assert client.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 5


def test_the_drill_is_bounded_and_needs_confirmation(aws: None) -> None:
    client, name = _function(5)
    with pytest.raises(UsageError):
        throttle(Aws.connect(region=REGION), _console(), name, 901, sleep=lambda _: None)
    with pytest.raises(Aborted):
        throttle(Aws.connect(region=REGION), _console(answer_yes=False), name, 10, sleep=lambda _: None)
    assert client.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 5
    refused = run("drill", "throttle", name, "--seconds", "10")
    assert refused.code == 3 and "--yes" in refused.err
