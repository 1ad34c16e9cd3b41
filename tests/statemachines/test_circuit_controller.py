"""circuit_controller.asl.json on moto: a real moto SQS queue + Lambda function + event source mapping."""

from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.circuit_breaker import CircuitBreakerConfig, CircuitState
from aws_lambda_powertools.utilities.circuit_breaker.persistence import CircuitBreakerDynamoDBPersistence

from tests.statemachines import asl
from tests.statemachines.conftest import ACCOUNT_ID, REGION, FakeClock, Machine, function_arn
from tests.statemachines.errors import TransientUpstreamError

TABLE = "circuits"
CIRCUIT = "partner-api"
LOCK_ID = f"{CIRCUIT}#controller"
FAST = {
    "recoverySeconds": 1,
    "maxBackoffSeconds": 1,
    "probeIntervalSeconds": 0,
    "requiredSuccesses": 2,
    "maxProbes": 5,
}


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", "def handler(event, context):\n    return {}\n")
    return buffer.getvalue()


@pytest.fixture
def consumer(aws: None, dynamodb: Any) -> dict[str, str]:
    """A queue, a consumer function and the event source mapping between them, all in moto."""
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="consumer-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="orders")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    lam = boto3.client("lambda", region_name=REGION)
    lam.create_function(
        FunctionName="order-consumer",
        Runtime="python3.11",
        Role=role,
        Handler="index.handler",
        Code={"ZipFile": _zip()},
    )
    mapping = lam.create_event_source_mapping(
        EventSourceArn=queue_arn, FunctionName="order-consumer", BatchSize=10
    )
    return {"queue_url": queue_url, "uuid": mapping["UUID"]}


@pytest.fixture
def fake_clock(register: Callable[..., Any]) -> FakeClock:
    fake = FakeClock(tick=7)
    register("clock", fake.handler)
    return fake


class Probe:
    """The health probe: plays outcomes in order (True = healthy) and records what the world looked like."""

    def __init__(self, uuid: str, *outcomes: bool, on_call: Callable[[], None] | None = None) -> None:
        self.outcomes = list(outcomes)
        self.uuid = uuid
        self.on_call = on_call
        self.mapping_states: list[str] = []
        self.records: list[dict[str, Any] | None] = []
        self._lock = threading.Lock()

    @property
    def calls(self) -> int:
        return len(self.mapping_states)

    def handler(self, event: Any, context: Any) -> dict[str, Any]:
        with self._lock:
            index = min(self.calls, len(self.outcomes) - 1)
            self.mapping_states.append(mapping_state(self.uuid))
            self.records.append(read_record(CIRCUIT))
        if self.on_call:
            self.on_call()
        if not self.outcomes[index]:
            raise TransientUpstreamError("health check: 503")
        return {"healthy": True}


@pytest.fixture
def controller(
    create_machine: Callable[..., Machine], consumer: dict[str, str], fake_clock: FakeClock
) -> Machine:
    return create_machine(
        asl.CIRCUIT_CONTROLLER,
        {
            "CircuitTableName": TABLE,
            "ClockFunctionArn": function_arn("clock"),
            "ProbeFunctionArn": function_arn("probe"),
        },
    )


def controller_input(uuid: str, **config: int) -> dict[str, Any]:
    return {"circuit": CIRCUIT, "eventSourceMappingUuids": [uuid], "config": {**FAST, **config}}


def mapping_state(uuid: str) -> str:
    return boto3.client("lambda", region_name=REGION).get_event_source_mapping(UUID=uuid)["State"]


def read_record(key: str) -> dict[str, Any] | None:
    item = (
        boto3.client("dynamodb", region_name=REGION)
        .get_item(TableName=TABLE, Key={"id": {"S": key}})
        .get("Item")
    )
    if item is None:
        return None
    return {k: (v.get("S") if "S" in v else int(v["N"])) for k, v in item.items()}


def powertools() -> CircuitBreakerDynamoDBPersistence:
    persistence = CircuitBreakerDynamoDBPersistence(
        table_name=TABLE, boto3_client=boto3.client("dynamodb", region_name=REGION)
    )
    persistence.configure(CircuitBreakerConfig(recovery_timeout=30), CIRCUIT)
    return persistence


def queue_depth(queue_url: str) -> int:
    attributes = boto3.client("sqs", region_name=REGION).get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def test_pauses_the_consumer_and_resumes_after_consecutive_healthy_probes(
    controller: Machine, consumer: dict[str, str], fake_clock: FakeClock, register: Callable[..., Any]
) -> None:
    opened_at = fake_clock.now - 1
    powertools().save_open(CIRCUIT, failure_count=5, opened_at=opened_at)  # the consumer's breaker tripped
    sqs = boto3.client("sqs", region_name=REGION)
    # healthy, unhealthy, healthy, healthy: the first success is not enough (2 consecutive required).
    probe = Probe(
        consumer["uuid"],
        True,
        False,
        True,
        True,
        on_call=lambda: sqs.send_message(QueueUrl=consumer["queue_url"], MessageBody='{"orderId": "o-9"}'),
    )
    register("probe", probe.handler)
    assert mapping_state(consumer["uuid"]) == "Enabled"

    # The hook names the execution after the opening, so a repeated StartExecution is the same execution.
    name = f"{CIRCUIT}-{opened_at}"
    first = controller.start(controller_input(consumer["uuid"]), name=name)
    assert controller.start(controller_input(consumer["uuid"]), name=name) == first
    execution = controller.finish(first)

    assert execution.status == "SUCCEEDED", execution.cause
    assert probe.calls == 4
    # The mapping was disabled during every probe: messages waited in the queue, never received.
    assert probe.mapping_states == ["Disabled"] * 4
    assert queue_depth(consumer["queue_url"]) == 4
    # Hook-started: the record stayed OPEN with the consumer's opened_at until the failed probe, which
    # restarted the recovery window from "now" (a clock reading taken after that probe).
    assert [r["state"] for r in probe.records] == ["OPEN"] * 4  # type: ignore[index]
    assert probe.records[0]["opened_at"] == opened_at  # type: ignore[index]
    assert probe.records[2]["opened_at"] in fake_clock.readings  # type: ignore[index]
    assert probe.records[2]["opened_at"] > opened_at  # type: ignore[index]
    # Recovered: record CLOSED (what Powertools reads), mapping enabled, controller lock released.
    assert read_record(CIRCUIT) == {
        "id": CIRCUIT,
        "state": "CLOSED",
        "failure_count": 0,
        "expiration": fake_clock.readings[-1] + 1 + 3600,  # latest clock reading
    }
    assert powertools().get_state(CIRCUIT).state == CircuitState.CLOSED
    assert mapping_state(consumer["uuid"]) == "Enabled"
    assert read_record(LOCK_ID) is None
    assert execution.states.index("CloseCircuit") < execution.states.index("EnableConsumers")


def test_gives_up_loudly_and_leaves_the_consumer_paused(
    controller: Machine, consumer: dict[str, str], register: Callable[..., Any]
) -> None:
    powertools().save_open(CIRCUIT, failure_count=5, opened_at=1)
    probe = Probe(consumer["uuid"], False)
    register("probe", probe.handler)

    execution = controller.run(controller_input(consumer["uuid"], maxProbes=3))

    assert (execution.status, execution.error) == ("FAILED", "CircuitStillOpen")
    assert probe.calls == 3
    assert mapping_state(consumer["uuid"]) == "Disabled"
    assert read_record(CIRCUIT)["state"] == "OPEN"  # type: ignore[index]
    assert read_record(LOCK_ID) is None  # a later controller can take over
    assert "EnableConsumers" not in execution.states


def test_alarm_started_controller_forces_the_record_open(
    controller: Machine, consumer: dict[str, str], fake_clock: FakeClock, register: Callable[..., Any]
) -> None:
    # An error-rate alarm fired while the breaker itself never tripped: no record (= CLOSED).
    probe = Probe(consumer["uuid"], True)
    register("probe", probe.handler)

    execution = controller.run(controller_input(consumer["uuid"], requiredSuccesses=1))

    assert execution.status == "SUCCEEDED"
    assert "EnsureCircuitOpen" in execution.states
    during = probe.records[0]
    assert during is not None
    assert (during["state"], during["failure_count"]) == ("OPEN", 0)
    assert during["opened_at"] == fake_clock.readings[0]
    assert probe.mapping_states == ["Disabled"]
    assert read_record(CIRCUIT)["state"] == "CLOSED"  # type: ignore[index]
    assert mapping_state(consumer["uuid"]) == "Enabled"


def test_second_controller_for_the_same_circuit_stands_down(
    controller: Machine, consumer: dict[str, str], fake_clock: FakeClock, register: Callable[..., Any]
) -> None:
    boto3.client("dynamodb", region_name=REGION).put_item(
        TableName=TABLE,
        Item={
            "id": {"S": LOCK_ID},
            "controller_execution": {"S": f"arn:aws:states:{REGION}:{ACCOUNT_ID}:execution:controller:other"},
            "lock_expiry": {"N": str(fake_clock.now + 600)},
        },
    )
    probe = Probe(consumer["uuid"], True)
    register("probe", probe.handler)

    execution = controller.run(controller_input(consumer["uuid"]))

    assert execution.status == "SUCCEEDED"
    assert execution.states[-1] == "AnotherControllerActive"
    assert probe.calls == 0
    assert mapping_state(consumer["uuid"]) == "Enabled"  # untouched: the other controller owns it
    assert read_record(LOCK_ID)["controller_execution"].endswith(":other")  # type: ignore[index]


def test_invalid_input_is_rejected(controller: Machine, consumer: dict[str, str]) -> None:
    execution = controller.run(controller_input(consumer["uuid"], maxProbes=0))

    assert (execution.status, execution.error) == ("FAILED", "InvalidInput")
    assert mapping_state(consumer["uuid"]) == "Enabled"
