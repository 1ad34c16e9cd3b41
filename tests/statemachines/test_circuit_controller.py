"""circuit_controller.asl.json on moto: a real moto SQS queue + Lambda function + event source mapping."""

from __future__ import annotations

import io
import json
import threading
import time
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
    "probeIntervalSeconds": 0,
    "requiredSuccesses": 2,
    "maxPauseSeconds": 3600,
    "rampStepSeconds": 0,
}
MAX_CONCURRENCY = 5
LEVELS = [2, 4, 5]  # WorkflowSettings().resume_levels(5)


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
        EventSourceArn=queue_arn,
        FunctionName="order-consumer",
        BatchSize=10,
        ScalingConfig={"MaximumConcurrency": MAX_CONCURRENCY},
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


def controller_input(
    uuid: str, *others: str, levels: list[int] = LEVELS, trigger: str | None = None, **config: int
) -> dict[str, Any]:
    started_by = {"trigger": trigger} if trigger is not None else {}
    return {
        "circuit": CIRCUIT,
        "eventSourceMappings": [{"uuid": u, "levels": levels} for u in (uuid, *others)],
        "config": {**FAST, "rampSteps": len(levels), **config},
        **started_by,
    }


def mapping_state(uuid: str) -> str:
    return boto3.client("lambda", region_name=REGION).get_event_source_mapping(UUID=uuid)["State"]


def mapping_concurrency(uuid: str) -> int | None:
    mapping = boto3.client("lambda", region_name=REGION).get_event_source_mapping(UUID=uuid)
    return (mapping.get("ScalingConfig") or {}).get("MaximumConcurrency")


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
    started = controller_input(consumer["uuid"], trigger="breaker")  # as the CircuitOpened rule starts it
    first = controller.start(started, name=name)
    assert controller.start(started, name=name) == first
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


def test_gives_up_loudly_at_the_deadline_and_leaves_the_consumer_paused(
    controller: Machine, consumer: dict[str, str], fake_clock: FakeClock, register: Callable[..., Any]
) -> None:
    powertools().save_open(CIRCUIT, failure_count=5, opened_at=1)
    # Every failed probe takes the (fake) clock 1000 s further: the third one is past the 2500 s deadline.
    probe = Probe(consumer["uuid"], False, on_call=lambda: fake_clock.advance(1000))
    register("probe", probe.handler)

    execution = controller.run(controller_input(consumer["uuid"], maxPauseSeconds=2500))

    assert (execution.status, execution.error) == ("FAILED", "ConsumerLeftPaused")
    assert "maxPauseSeconds" in (execution.cause or "")
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


def put_circuit_record(state: str, **numbers: int) -> None:
    """The circuit's record as a breaker wrote it, written directly (no Powertools state change)."""
    item = {"id": {"S": CIRCUIT}, "state": {"S": state}, **{k: {"N": str(v)} for k, v in numbers.items()}}
    boto3.client("dynamodb", region_name=REGION).put_item(TableName=TABLE, Item=item)


@pytest.mark.parametrize("record", [None, "CLOSED"])
def test_a_circuit_opened_claim_the_record_does_not_back_pauses_nobody(
    controller: Machine,
    consumer: dict[str, str],
    fake_clock: FakeClock,
    register: Callable[..., Any],
    record: str | None,
) -> None:
    # Any principal allowed on the circuit bus can send CircuitOpened naming any circuit.
    if record is not None:
        put_circuit_record(record, failure_count=0)
    before = read_record(CIRCUIT)
    probe = Probe(consumer["uuid"], True)
    register("probe", probe.handler)

    execution = controller.run(controller_input(consumer["uuid"], trigger="breaker"))

    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.states[-1] == "NothingToControl"
    assert "DisableConsumers" not in execution.states and "EnsureCircuitOpen" not in execution.states
    assert probe.calls == 0
    assert mapping_state(consumer["uuid"]) == "Enabled"
    assert read_record(CIRCUIT) == before  # not forced open
    assert read_record(LOCK_ID) is None


def test_a_breaker_claim_for_a_half_open_circuit_pauses_the_consumers(
    controller: Machine, consumer: dict[str, str], fake_clock: FakeClock, register: Callable[..., Any]
) -> None:
    put_circuit_record("HALF_OPEN", failure_count=5, opened_at=fake_clock.now - 40)
    probe = Probe(consumer["uuid"], True)
    register("probe", probe.handler)

    execution = controller.run(controller_input(consumer["uuid"], trigger="breaker", requiredSuccesses=1))

    assert execution.status == "SUCCEEDED", execution.cause
    assert "ConfirmCircuitOpen" in execution.states and "EnsureCircuitOpen" not in execution.states
    assert probe.mapping_states == ["Disabled"]
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
    execution = controller.run(controller_input(consumer["uuid"], requiredSuccesses=0))

    assert (execution.status, execution.error) == ("FAILED", "InvalidInput")
    assert mapping_state(consumer["uuid"]) == "Enabled"


# ------------------------------------------------------------------------------ close fast, resume gently


class MappingWatcher:
    """Records every (state, MaximumConcurrency) the mapping goes through; ``on_change`` sees each new one."""

    def __init__(self, uuid: str, on_change: Callable[[tuple[str, int | None]], None] | None = None) -> None:
        self.uuid = uuid
        self.on_change = on_change
        self.seen: list[tuple[str, int | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MappingWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            mapping = boto3.client("lambda", region_name=REGION).get_event_source_mapping(UUID=self.uuid)
            now = (mapping["State"], (mapping.get("ScalingConfig") or {}).get("MaximumConcurrency"))
            if not self.seen or self.seen[-1] != now:
                self.seen.append(now)
                if self.on_change:
                    self.on_change(now)


def waits(execution: Any, state: str = "WaitBeforeProbe") -> list[int]:
    """The seconds each visit of a Wait state waited (from its input in the history)."""
    entered = [e["stateEnteredEventDetails"] for e in execution.events if "stateEnteredEventDetails" in e]
    return [json.loads(d["input"])["loop"]["waitSeconds"] for d in entered if d["name"] == state]


def entered_at(execution: Any, state: str) -> list[float]:
    return [
        e["timestamp"].timestamp()
        for e in execution.events
        if e.get("stateEnteredEventDetails", {}).get("name") == state
    ]


def test_a_long_outage_closes_within_one_recovery_window_and_one_probe_interval(
    controller: Machine, consumer: dict[str, str], fake_clock: FakeClock, register: Callable[..., Any]
) -> None:
    powertools().save_open(CIRCUIT, failure_count=5, opened_at=fake_clock.now)
    failures = 8
    # Each failed probe is 15 (fake) minutes of outage: two hours down, then healthy.
    probe = Probe(consumer["uuid"], *[False] * failures, True, on_call=lambda: fake_clock.advance(900))
    register("probe", probe.handler)

    execution = controller.run(
        controller_input(consumer["uuid"], recoverySeconds=2, probeIntervalSeconds=1, maxPauseSeconds=14_400)
    )

    assert execution.status == "SUCCEEDED", execution.cause
    assert probe.calls == failures + 2
    # The wait never grows past the recovery window, however many probes failed (it used to double).
    assert waits(execution) == [2] * (failures + 1) + [1]
    # Recovered right after the last failed probe: closed one window + one interval (+ probe time) later.
    last_failure = entered_at(execution, "ProbeFailed")[-1]
    closed = entered_at(execution, "CloseCircuit")[0]
    assert 3 <= closed - last_failure < 3 + 10  # 2 s window + 1 s interval; the old growth was 2**8 s
    assert read_record(CIRCUIT)["state"] == "CLOSED"  # type: ignore[index]


def test_resumes_half_open_and_ramps_to_the_configured_maximum(
    controller: Machine, consumer: dict[str, str], fake_clock: FakeClock, register: Callable[..., Any]
) -> None:
    powertools().save_open(CIRCUIT, failure_count=5, opened_at=fake_clock.now)
    register("probe", Probe(consumer["uuid"], True).handler)

    with MappingWatcher(consumer["uuid"]) as watcher:
        execution = controller.run(controller_input(consumer["uuid"], rampStepSeconds=1))
        time.sleep(0.2)

    assert execution.status == "SUCCEEDED", execution.cause
    assert watcher.seen == [("Enabled", 5), ("Disabled", 5), ("Enabled", 2), ("Enabled", 4), ("Enabled", 5)]
    # Each step checked that real calls still succeed (the consumers' breaker kept the record CLOSED).
    assert execution.states.count("CheckCircuitClosed") == len(LEVELS) - 1
    assert read_record(LOCK_ID) is None


def test_pauses_again_when_the_circuit_reopens_during_the_ramp(
    controller: Machine, consumer: dict[str, str], fake_clock: FakeClock, register: Callable[..., Any]
) -> None:
    powertools().save_open(CIRCUIT, failure_count=5, opened_at=fake_clock.now)
    probe = Probe(consumer["uuid"], True)
    register("probe", probe.handler)
    reopened = threading.Event()

    def consumers_breaker_trips(seen: tuple[str, int | None]) -> None:
        # Real calls at concurrency 2 fail: the consumers' breaker opens the circuit again (once).
        if seen == ("Enabled", 2) and not reopened.is_set():
            reopened.set()
            powertools().save_open(CIRCUIT, failure_count=5, opened_at=fake_clock.now)

    with MappingWatcher(consumer["uuid"], consumers_breaker_trips) as watcher:
        execution = controller.run(controller_input(consumer["uuid"], rampStepSeconds=1))
        time.sleep(0.2)

    assert execution.status == "SUCCEEDED", execution.cause
    assert watcher.seen == [
        ("Enabled", 5), ("Disabled", 5), ("Enabled", 2),  # resumed; the circuit opened again
        ("Disabled", 2), ("Enabled", 2), ("Enabled", 4), ("Enabled", 5),  # paused, probed, resumed gently
    ]  # fmt: skip
    assert execution.states.count("DisableConsumers") == 2 and probe.calls == 4
    assert "RaiseConcurrency" not in execution.states[: execution.states.index("ReadClockForRepause")]
    assert read_record(CIRCUIT)["state"] == "CLOSED"  # type: ignore[index]


def test_a_circuit_reopening_after_the_deadline_leaves_the_consumer_paused(
    controller: Machine, consumer: dict[str, str], fake_clock: FakeClock, register: Callable[..., Any]
) -> None:
    powertools().save_open(CIRCUIT, failure_count=5, opened_at=fake_clock.now)
    register("probe", Probe(consumer["uuid"], True).handler)

    def reopens_late(seen: tuple[str, int | None]) -> None:
        if seen == ("Enabled", 2):
            fake_clock.advance(7200)
            powertools().save_open(CIRCUIT, failure_count=5, opened_at=fake_clock.now)

    with MappingWatcher(consumer["uuid"], reopens_late):
        execution = controller.run(
            controller_input(consumer["uuid"], rampStepSeconds=1, maxPauseSeconds=3600)
        )

    assert (execution.status, execution.error) == ("FAILED", "ConsumerLeftPaused")
    assert execution.states.count("DisableConsumers") == 2 and "MarkGiveUp" in execution.states
    assert mapping_state(consumer["uuid"]) == "Disabled"
    assert read_record(LOCK_ID) is None


# ------------------------------------------------------------------------------ failure paths after a pause


@pytest.fixture
def failing_updates(
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[Callable[[str, dict[str, Any]], bool]], None]:
    """failing_updates(when): UpdateEventSourceMapping calls with ``when(uuid, spec)`` true are refused (400)."""
    from moto.awslambda.models import LambdaBackend
    from moto.core.exceptions import JsonRESTError

    original = LambdaBackend.update_event_source_mapping

    def install(when: Callable[[str, dict[str, Any]], bool]) -> None:
        def update(self: Any, uuid: str, spec: dict[str, Any]) -> Any:
            if when(uuid, spec):
                raise JsonRESTError("InvalidParameterValueException", "injected by the test")
            return original(self, uuid, spec)

        monkeypatch.setattr(LambdaBackend, "update_event_source_mapping", update)

    return install


def test_a_failed_pause_re_enables_the_consumers_and_fails_distinctly(
    controller: Machine,
    consumer: dict[str, str],
    register: Callable[..., Any],
    failing_updates: Callable[..., None],
) -> None:
    powertools().save_open(CIRCUIT, failure_count=5, opened_at=1)
    register("probe", Probe(consumer["uuid"], True).handler)
    other = consumer["uuid"]
    queue_arn = boto3.client("sqs", region_name=REGION).get_queue_attributes(
        QueueUrl=consumer["queue_url"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    second = boto3.client("lambda", region_name=REGION).create_event_source_mapping(
        EventSourceArn=queue_arn, FunctionName="order-consumer", BatchSize=10
    )["UUID"]
    # The second mapping refuses to be disabled (and only that).
    failing_updates(lambda uuid, spec: uuid == second and spec.get("Enabled") is False)

    execution = controller.run(controller_input(other, second))

    assert (execution.status, execution.error) == ("FAILED", "PauseFailed")
    assert "RestoreConsumers" in execution.states and "Probe" not in execution.states
    assert mapping_state(other) == "Enabled" and mapping_state(second) == "Enabled"
    assert read_record(LOCK_ID) is None


def test_a_pause_that_cannot_be_undone_fails_as_consumer_left_paused(
    controller: Machine, consumer: dict[str, str], register: Callable[..., Any]
) -> None:
    powertools().save_open(CIRCUIT, failure_count=5, opened_at=1)
    register("probe", Probe(consumer["uuid"], True).handler)
    missing = "00000000-0000-0000-0000-000000000000"  # neither disabled nor re-enabled

    execution = controller.run(controller_input(consumer["uuid"], missing))

    assert (execution.status, execution.error) == ("FAILED", "ConsumerLeftPaused")
    assert "RestoreFailed" in execution.states
    assert read_record(LOCK_ID) is None


def test_a_failed_close_leaves_the_consumer_paused_and_says_so(
    controller: Machine, consumer: dict[str, str], register: Callable[..., Any]
) -> None:
    powertools().save_open(CIRCUIT, failure_count=5, opened_at=1)

    def table_gone() -> None:
        if probe.calls == 2:  # the last healthy probe: the record cannot be closed any more
            boto3.client("dynamodb", region_name=REGION).delete_table(TableName=TABLE)

    probe = Probe(consumer["uuid"], True, on_call=table_gone)
    register("probe", probe.handler)

    execution = controller.run(controller_input(consumer["uuid"]))

    assert (execution.status, execution.error) == ("FAILED", "ConsumerLeftPaused")
    assert "CloseFailed" in execution.states and "EnableConsumers" not in execution.states
    assert mapping_state(consumer["uuid"]) == "Disabled"


def test_a_failed_enable_fails_as_consumer_left_paused(
    controller: Machine,
    consumer: dict[str, str],
    register: Callable[..., Any],
    failing_updates: Callable[..., None],
) -> None:
    powertools().save_open(CIRCUIT, failure_count=5, opened_at=1)
    register("probe", Probe(consumer["uuid"], True).handler)
    failing_updates(lambda uuid, spec: spec.get("Enabled") is True)

    execution = controller.run(controller_input(consumer["uuid"]))

    assert (execution.status, execution.error) == ("FAILED", "ConsumerLeftPaused")
    assert "EnableFailed" in execution.states
    assert mapping_state(consumer["uuid"]) == "Disabled"
    assert read_record(CIRCUIT)["state"] == "CLOSED"  # type: ignore[index]
    assert read_record(LOCK_ID) is None


def test_a_failed_ramp_step_fails_distinctly_with_the_consumer_running(
    controller: Machine,
    consumer: dict[str, str],
    register: Callable[..., Any],
    failing_updates: Callable[..., None],
) -> None:
    powertools().save_open(CIRCUIT, failure_count=5, opened_at=1)
    register("probe", Probe(consumer["uuid"], True).handler)
    failing_updates(lambda uuid, spec: "Enabled" not in spec and "ScalingConfig" in spec)

    execution = controller.run(controller_input(consumer["uuid"]))

    assert (execution.status, execution.error) == ("FAILED", "ConsumerRampIncomplete")
    assert (mapping_state(consumer["uuid"]), mapping_concurrency(consumer["uuid"])) == ("Enabled", 2)
    assert read_record(LOCK_ID) is None
