"""Fixtures for executing the ASL definitions on moto's Step Functions interpreter.

Every test gets a fresh ``mock_aws`` with ``execute_state_machine`` on, fake credentials, one region,
and Lambda tasks routed to in-process handlers (``localcloud.moto_patches``).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas.fulfilment import clock as clock_module
from localcloud import moto_patches
from localcloud.moto_patches import inprocess_lambda
from tests.statemachines import asl

REGION = "eu-west-1"
ACCOUNT_ID = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/state-machine-role"
SFN_CONFIG = {"stepfunctions": {"execute_state_machine": True}}


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    moto_patches.install_all()
    with mock_aws(config=SFN_CONFIG):  # type: ignore[arg-type]
        yield
        stop_running_executions(boto3.client("stepfunctions", region_name=REGION))
    inprocess_lambda.clear_inprocess_functions()


def stop_running_executions(sfn: Any) -> None:
    """Stop what a test left running (a failed assertion, a loser it did not wait for).

    moto's executions are threads that outlive the test: left running, one would call the next test's
    handlers (registered under the same names) and write into its tables, failing a test that is fine.
    A stopped execution ends at its next state instead.
    """
    for machine in sfn.list_state_machines()["stateMachines"]:
        running = sfn.list_executions(stateMachineArn=machine["stateMachineArn"], statusFilter="RUNNING")
        for execution in running["executions"]:
            sfn.stop_execution(executionArn=execution["executionArn"], error="TestEnded")


@pytest.fixture
def sfn(aws: None) -> Any:
    return boto3.client("stepfunctions", region_name=REGION)


@pytest.fixture
def sqs(aws: None) -> Any:
    return boto3.client("sqs", region_name=REGION)


@pytest.fixture
def dynamodb(aws: None) -> Any:
    return boto3.client("dynamodb", region_name=REGION)


@pytest.fixture
def register(aws: None) -> Callable[..., inprocess_lambda.InProcessFunction]:
    """register(name, handler) -> the registration (its ARN is ``function_arn(name)``)."""

    def _register(
        name: str, handler: Callable[[Any, Any], Any], **options: Any
    ) -> inprocess_lambda.InProcessFunction:
        options.setdefault("region", REGION)
        options.setdefault("account_id", ACCOUNT_ID)
        options.setdefault("timeout_seconds", asl.LAMBDA_TASK_TIMEOUT_SECONDS)
        return inprocess_lambda.register_inprocess_function(name, handler, **options)

    return _register


@dataclass
class Machine:
    """A created state machine plus helpers to run it."""

    sfn: Any
    arn: str
    definition: dict[str, Any]

    def start(self, payload: Mapping[str, Any], name: str | None = None) -> str:
        response = self.sfn.start_execution(
            stateMachineArn=self.arn, name=name or f"test-{uuid.uuid4().hex[:20]}", input=json.dumps(payload)
        )
        return response["executionArn"]

    def run(self, payload: Mapping[str, Any], name: str | None = None, timeout: float = 120.0) -> Execution:
        execution_arn = self.start(payload, name)
        return self.finish(execution_arn, timeout)

    def finish(self, execution_arn: str, timeout: float = 120.0) -> Execution:
        description = asl.wait_for(self.sfn, execution_arn, timeout)
        return Execution(description=description, events=asl.history(self.sfn, execution_arn))


@dataclass
class Execution:
    description: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def arn(self) -> str:
        return self.description["executionArn"]

    @property
    def status(self) -> str:
        return self.description["status"]

    @property
    def error(self) -> str | None:
        return self.description.get("error")

    @property
    def cause(self) -> str | None:
        return self.description.get("cause")

    @property
    def output(self) -> Any:
        return json.loads(self.description["output"]) if self.description.get("output") else None

    @property
    def states(self) -> list[str]:
        return asl.entered_states(self.events)

    def attempts(self, state_name: str) -> list[dict[str, Any]]:
        return asl.task_attempts(self.events, state_name)


@pytest.fixture
def create_machine(sfn: Any) -> Callable[..., Machine]:
    """create_machine(name, values, **compress_kwargs) -> Machine, from the file, time-compressed."""

    def _create(
        machine: str, values: Mapping[str, str], *, compress: bool = True, **compress_kwargs: Any
    ) -> Machine:
        definition = asl.fill(machine, values)
        if compress:
            definition = asl.compress_timings(definition, **compress_kwargs)
        arn = sfn.create_state_machine(
            name=f"{machine.replace('_', '-')}-{uuid.uuid4().hex[:8]}",
            definition=json.dumps(definition),
            roleArn=ROLE_ARN,
        )["stateMachineArn"]
        return Machine(sfn=sfn, arn=arn, definition=definition)

    return _create


class Script:
    """A fake task handler that plays a scripted sequence of outcomes, then repeats the last one.

    Each outcome is an exception instance (raised), a callable (called with the event) or a value
    (returned). Thread-safe; ``events`` records what it received.
    """

    def __init__(self, *outcomes: Any) -> None:
        self._outcomes = list(outcomes) or [{}]
        self._lock = threading.Lock()
        self.events: list[Any] = []

    def __call__(self, event: Any, context: Any) -> Any:
        with self._lock:
            index = min(len(self.events), len(self._outcomes) - 1)
            self.events.append(event)
            outcome = self._outcomes[index]
        if isinstance(outcome, BaseException):
            raise outcome
        if callable(outcome):
            return outcome(event)
        return outcome

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self.events)


def sleep_then(seconds: float, value: Any) -> Callable[[Any], Any]:
    def _outcome(event: Any) -> Any:
        time.sleep(seconds)
        return value

    return _outcome


class FakeClock:
    """The real clock handler's arithmetic on a virtual 'now' the test moves (no sleeping).

    ``tick`` seconds are added after every reading, so successive readings are distinguishable.
    """

    def __init__(self, tick: int = 0) -> None:
        self.now = int(time.time())
        self.tick = tick
        self.readings: list[int] = []

    def advance(self, seconds: int) -> None:
        self.now += seconds

    def handler(self, event: Any, context: Any) -> dict[str, int]:
        result = clock_module.compute(event, self.now)
        self.readings.append(self.now)
        self.now += self.tick
        return result
