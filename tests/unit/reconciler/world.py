"""Consumers, their mappings, a circuit table and a controller state machine on moto, shaped like the
stack's: what the reconciler (and ops consumer) act on. moto never runs the controller: an execution
stays RUNNING until the test stops it, which stands in for a controller that gave up or died."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any

import boto3

from lambdas.contracts.circuit import HOLD_UNTIL, LOCK_EXPIRY, LOCK_OWNER, hold_key, lock_key
from lambdas.reconciler.control import ConsumerControl
from tests.unit.helpers import REGION, create_key_table

ACCOUNT = "123456789012"
# The controller's input as stacks.workflows.controller_input_for builds it (opaque to the reconciler).
CONFIG = {
    "recoverySeconds": 30,
    "probeIntervalSeconds": 10,
    "requiredSuccesses": 2,
    "maxPauseSeconds": 14_400,
    "rampStepSeconds": 30,
    "rampSteps": 3,
}


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return None\n")
    return buffer.getvalue()


@dataclass
class World:
    control: ConsumerControl
    lambda_: Any
    sfn: Any
    dynamodb: Any

    @property
    def table(self) -> str:
        return self.control.circuit_table

    def mapping(self, consumer: str) -> dict[str, Any]:
        uuid = self.control.consumers[consumer].mapping
        mapping: dict[str, Any] = self.lambda_.get_event_source_mapping(UUID=uuid)
        return mapping

    def state(self, consumer: str) -> str:
        return str(self.mapping(consumer)["State"])

    def set_enabled(self, consumer: str, enabled: bool) -> None:
        self.lambda_.update_event_source_mapping(
            UUID=self.control.consumers[consumer].mapping, Enabled=enabled
        )

    def put(self, item: dict[str, Any]) -> None:
        self.dynamodb.put_item(TableName=self.table, Item=item)

    def item(self, key: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.dynamodb.get_item(
            TableName=self.table, Key={"id": {"S": key}}, ConsistentRead=True
        ).get("Item")
        return found

    def circuit(self, circuit: str, state: str, opened_at: int = 1_767_225_600) -> None:
        self.put({"id": {"S": circuit}, "state": {"S": state}, "opened_at": {"N": str(opened_at)}})

    def lock(self, circuit: str, owner: str, expiry: int = 4_000_000_000) -> None:
        self.put(
            {
                "id": {"S": lock_key(circuit)},
                LOCK_OWNER: {"S": owner},
                LOCK_EXPIRY: {"N": str(expiry)},
                "circuit": {"S": circuit},
            }
        )

    def hold(self, consumer: str, until: float) -> None:
        self.put({"id": {"S": hold_key(consumer)}, HOLD_UNTIL: {"N": str(int(until))}})

    def start_controller(self, circuit: str, name: str | None = None) -> str:
        kwargs = {"name": name} if name else {}
        arn: str = self.sfn.start_execution(
            stateMachineArn=self.control.controller_arn,
            input=json.dumps(self.control.circuits[circuit]),
            **kwargs,
        )["executionArn"]
        return arn

    def running(self) -> list[dict[str, Any]]:
        executions: list[dict[str, Any]] = self.sfn.list_executions(
            stateMachineArn=self.control.controller_arn, statusFilter="RUNNING"
        )["executions"]
        return executions

    def stop(self, execution_arn: str) -> None:
        self.sfn.stop_execution(executionArn=execution_arn, error="CircuitStillOpen")


def build_world(
    consumers: dict[str, str] | None = None, paused_circuits: tuple[str, ...] = ("partner",)
) -> World:
    """``consumers``: consumer -> circuit. The controller pauses the consumers of ``paused_circuits``."""
    consumers = consumers or {"orders": "partner", "notifications": "notifier"}
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="consumer", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    lambda_ = boto3.client("lambda", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    mappings: dict[str, str] = {}
    for name in consumers:
        function = lambda_.create_function(
            FunctionName=f"{name}-consumer", Runtime="python3.12", Role=role, Handler="handler.handler",
            Code={"ZipFile": _zip()},
        )  # fmt: skip
        url = sqs.create_queue(QueueName=f"{name}-work")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        mappings[name] = lambda_.create_event_source_mapping(
            EventSourceArn=arn, FunctionName=function["FunctionArn"], BatchSize=10, Enabled=True
        )["UUID"]
    sfn = boto3.client("stepfunctions", region_name=REGION)
    controller = sfn.create_state_machine(
        name="CircuitController",
        definition=json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Pass", "End": True}}}),
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/controller",
    )["stateMachineArn"]
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    create_key_table(dynamodb, "circuits")
    control = ConsumerControl.model_validate(
        {
            "controller_arn": controller,
            "circuit_table": "circuits",
            "circuits": {
                circuit: {
                    "circuit": circuit,
                    "eventSourceMappings": [
                        {"uuid": mappings[c], "levels": [2, 4, 5]}
                        for c, d in consumers.items()
                        if d == circuit
                    ],
                    "config": CONFIG,
                }
                for circuit in paused_circuits
            },
            "consumers": {name: {"mapping": mappings[name], "circuit": c} for name, c in consumers.items()},
        }
    )
    return World(control=control, lambda_=lambda_, sfn=sfn, dynamodb=dynamodb)
