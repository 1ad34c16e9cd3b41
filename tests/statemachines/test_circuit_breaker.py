"""circuit_breaker.asl.json executed on moto, sharing its DynamoDB record with the Powertools breaker."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.circuit_breaker import (
    CircuitBreakerConfig,
    CircuitBreakerOpenError,
    CircuitState,
    circuit_breaker,
)
from aws_lambda_powertools.utilities.circuit_breaker.persistence import CircuitBreakerDynamoDBPersistence

from tests.statemachines import asl
from tests.statemachines.conftest import REGION, FakeClock, Machine, function_arn
from tests.statemachines.errors import PermanentUpstreamError, TransientUpstreamError
from tests.waiting import wait_until

TABLE = "circuits"
CIRCUIT = "partner-api"
THRESHOLD = 3
RECOVERY = 30
CONFIG = {"failureThreshold": THRESHOLD, "recoverySeconds": RECOVERY}
INPUT = {"circuit": CIRCUIT, "request": {"orderId": "o-1"}, "config": CONFIG}
POWERTOOLS_ATTRIBUTES = {
    "id",
    "state",
    "failure_count",
    "opened_at",
    "half_open_owner",
    "probe_lease_expiry",
    "expiration",
}


class Dependency:
    """The protected call: healthy or failing, optionally blocking, recording what it saw of the record."""

    def __init__(self) -> None:
        self.error: Exception | None = None
        self.gate: threading.Event | None = None
        self.calls = 0
        self.records_seen: list[dict[str, Any] | None] = []
        self._lock = threading.Lock()

    def handler(self, event: Any, context: Any) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
        self.records_seen.append(read_record())
        if self.gate is not None:
            self.gate.wait(120)  # a backstop only: the test opens the gate once it has judged
        if self.error is not None:
            raise self.error
        return {"ok": True, "mode": event["mode"], "request": event["request"]}


@pytest.fixture
def table(dynamodb: Any) -> str:
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return TABLE


@pytest.fixture
def fake_clock(register: Callable[..., Any]) -> FakeClock:
    fake = FakeClock()
    register("clock", fake.handler)
    return fake


@pytest.fixture
def dependency(register: Callable[..., Any]) -> Iterator[Dependency]:
    dep = Dependency()
    register("call-dependency", dep.handler)
    yield dep
    if dep.gate is not None:
        dep.gate.set()  # a test that failed before opening it must not leave a call blocked for minutes


@pytest.fixture
def breaker(
    create_machine: Callable[..., Machine], table: str, fake_clock: FakeClock, dependency: Dependency
) -> Machine:
    return create_machine(asl.CIRCUIT_BREAKER, values(table))


def values(table: str) -> dict[str, str]:
    return {
        "CircuitTableName": table,
        "ClockFunctionArn": function_arn("clock"),
        "DependencyCallFunctionArn": function_arn("call-dependency"),
    }


def read_record(name: str = CIRCUIT) -> dict[str, Any] | None:
    item = (
        boto3.client("dynamodb", region_name=REGION)
        .get_item(TableName=TABLE, Key={"id": {"S": name}}, ConsistentRead=True)
        .get("Item")
    )
    if item is None:
        return None
    return {key: (value.get("S") if "S" in value else int(value["N"])) for key, value in item.items()}


def powertools() -> CircuitBreakerDynamoDBPersistence:
    """A fresh Powertools persistence layer (fresh so its 5 s local cache never answers for the table)."""
    persistence = CircuitBreakerDynamoDBPersistence(
        table_name=TABLE, boto3_client=boto3.client("dynamodb", region_name=REGION)
    )
    persistence.configure(
        CircuitBreakerConfig(failure_threshold=THRESHOLD, recovery_timeout=RECOVERY), CIRCUIT
    )
    return persistence


def test_closed_counts_failures_opens_at_threshold_fails_fast_then_one_probe_closes(
    breaker: Machine, dependency: Dependency, fake_clock: FakeClock
) -> None:
    dependency.error = TransientUpstreamError("partner 503")

    # CLOSED: each failure is re-raised under its own name and counted in the shared record.
    for expected_count in range(1, THRESHOLD):
        execution = breaker.run(INPUT)
        assert (execution.status, execution.error) == ("FAILED", "TransientUpstreamError")
        assert read_record() == {"id": CIRCUIT, "state": "CLOSED", "failure_count": expected_count}
        assert powertools().get_state(CIRCUIT).state == CircuitState.CLOSED
        assert "ReadClock" not in execution.states  # the healthy path never needs the clock

    # The threshold-th failure trips it: OPEN from now, in exactly the Powertools layout.
    execution = breaker.run(INPUT)
    assert (execution.status, execution.error) == ("FAILED", "TransientUpstreamError")
    assert "OpenCircuit" in execution.states
    opened_at = fake_clock.now
    assert read_record() == {
        "id": CIRCUIT,
        "state": "OPEN",
        "failure_count": THRESHOLD,
        "opened_at": opened_at,
        "expiration": opened_at + RECOVERY + 3600,
    }
    assert set(read_record() or {}) <= POWERTOOLS_ATTRIBUTES
    record = powertools().get_state(CIRCUIT)
    assert (record.state, record.opened_at, record.failure_count) == (CircuitState.OPEN, opened_at, THRESHOLD)
    assert dependency.calls == THRESHOLD

    # OPEN and not due: fail fast, the dependency is not called.
    for advance in (0, RECOVERY - 1):
        fake_clock.advance(advance)
        execution = breaker.run(INPUT)
        assert (execution.status, execution.error) == ("FAILED", "CircuitOpen")
        assert "CallDependency" not in execution.states
        assert execution.states[-2:] == ["IsRecoveryDue", "CircuitOpen"]
    assert dependency.calls == THRESHOLD

    # Due: this execution wins the half-open election, probes once and closes the circuit.
    fake_clock.advance(1)
    dependency.error = None
    execution = breaker.run(INPUT)
    assert execution.status == "SUCCEEDED"
    assert execution.output == {"ok": True, "mode": "PROBE", "request": INPUT["request"]}
    assert dependency.calls == THRESHOLD + 1
    during_probe = dependency.records_seen[-1]
    assert during_probe == {
        "id": CIRCUIT,
        "state": "HALF_OPEN",
        "failure_count": THRESHOLD,
        "opened_at": opened_at,
        "half_open_owner": execution.arn,
        "probe_lease_expiry": fake_clock.now + RECOVERY + 30,
        "expiration": fake_clock.now + RECOVERY + 3600,
    }
    assert read_record() == {
        "id": CIRCUIT,
        "state": "CLOSED",
        "failure_count": 0,
        "expiration": fake_clock.now + RECOVERY + 3600,
    }
    assert powertools().get_state(CIRCUIT).state == CircuitState.CLOSED


def test_only_one_concurrent_execution_probes(
    breaker: Machine, dependency: Dependency, fake_clock: FakeClock
) -> None:
    powertools().save_open(CIRCUIT, failure_count=THRESHOLD, opened_at=fake_clock.now - RECOVERY)
    dependency.gate = threading.Event()

    arns = [breaker.start(INPUT) for _ in range(4)]

    def settled() -> dict[str, str] | None:
        # Every execution either finished or is blocked in the dependency (the gate is shut): a second
        # prober would be a second blocked call, so this ends on a defect as well as on success.
        statuses = {arn: breaker.sfn.describe_execution(executionArn=arn)["status"] for arn in arns}
        blocked = list(statuses.values()).count("RUNNING")
        return statuses if blocked == dependency.calls and dependency.calls >= 1 else None

    statuses = wait_until(settled, what="four executions finished or blocked in the dependency")
    # Only the prober is still running (blocked in the dependency); every other one failed fast.
    assert dependency.calls == 1
    losers = [breaker.finish(arn) for arn, status in statuses.items() if status != "RUNNING"]
    assert len(losers) == 3
    assert {(e.status, e.error) for e in losers} == {("FAILED", "CircuitOpen")}
    assert read_record()["state"] == "HALF_OPEN"  # type: ignore[index]

    dependency.gate.set()
    results = [breaker.finish(arn) for arn in arns]
    assert sorted(e.status for e in results) == ["FAILED", "FAILED", "FAILED", "SUCCEEDED"]
    assert dependency.calls == 1
    assert read_record()["state"] == "CLOSED"  # type: ignore[index]


def test_failed_probe_reopens_from_now(
    breaker: Machine, dependency: Dependency, fake_clock: FakeClock
) -> None:
    first_opened_at = fake_clock.now - RECOVERY - 5
    powertools().save_open(CIRCUIT, failure_count=THRESHOLD, opened_at=first_opened_at)
    dependency.error = TransientUpstreamError("still down")

    execution = breaker.run(INPUT)

    assert (execution.status, execution.error) == ("FAILED", "TransientUpstreamError")
    assert "ReopenCircuit" in execution.states
    assert read_record() == {
        "id": CIRCUIT,
        "state": "OPEN",
        "failure_count": 0,
        "opened_at": fake_clock.now,
        "expiration": fake_clock.now + RECOVERY + 3600,
    }
    # The next caller fails fast again for a whole recovery window.
    assert breaker.run(INPUT).error == "CircuitOpen"
    assert dependency.calls == 1


def test_powertools_lambda_and_workflow_agree_on_one_state(
    breaker: Machine, dependency: Dependency, fake_clock: FakeClock
) -> None:
    lambda_calls: list[str] = []

    @circuit_breaker(
        name=CIRCUIT,
        persistence_store=powertools(),
        config=CircuitBreakerConfig(
            failure_threshold=THRESHOLD, recovery_timeout=RECOVERY, local_cache_max_age=0
        ),
    )
    def lambda_side_call(order_id: str) -> str:
        lambda_calls.append(order_id)
        return "charged"

    # The workflow opens the circuit; the Powertools-protected Lambda code then refuses to call.
    dependency.error = TransientUpstreamError("503")
    for _ in range(THRESHOLD):
        breaker.run(INPUT)
    with pytest.raises(CircuitBreakerOpenError):
        lambda_side_call("o-1")
    assert lambda_calls == []

    # Powertools elects a Lambda prober (HALF_OPEN, its own owner id, lease = real now + recovery):
    # the workflow treats that as someone else's probe and fails fast ...
    assert powertools().try_acquire_half_open(
        CIRCUIT, owner="1234#lambda-env", opened_at=read_record()["opened_at"]
    )  # type: ignore[index]
    dependency.error = None
    calls_before = dependency.calls
    execution = breaker.run(INPUT)
    assert execution.error == "CircuitOpen"
    assert execution.states[-2:] == ["IsProbeLeaseExpired", "CircuitOpen"]
    assert dependency.calls == calls_before

    # ... until the Lambda prober's lease expires (it vanished): the workflow takes the probe over.
    fake_clock.now = read_record()["probe_lease_expiry"]  # type: ignore[index]  # Powertools used real time
    execution = breaker.run(INPUT)
    assert execution.status == "SUCCEEDED"
    assert "AcquireProbe" in execution.states
    assert powertools().get_state(CIRCUIT).state == CircuitState.CLOSED
    assert lambda_side_call("o-2") == "charged"


def test_success_resets_the_failure_streak(breaker: Machine, dependency: Dependency) -> None:
    dependency.error = TransientUpstreamError("503")
    breaker.run(INPUT)
    breaker.run(INPUT)
    assert read_record()["failure_count"] == 2  # type: ignore[index]

    dependency.error = None
    execution = breaker.run(INPUT)

    assert execution.status == "SUCCEEDED"
    assert "ResetFailureCount" in execution.states
    assert read_record() == {"id": CIRCUIT, "state": "CLOSED", "failure_count": 0}


def test_client_errors_are_not_breaker_failures(breaker: Machine, dependency: Dependency) -> None:
    dependency.error = PermanentUpstreamError("400 bad request")

    for _ in range(THRESHOLD + 1):
        execution = breaker.run(INPUT)
        assert (execution.status, execution.error) == ("FAILED", "PermanentUpstreamError")

    assert read_record() is None  # nothing counted, nothing written
    assert dependency.calls == THRESHOLD + 1


def test_unreadable_state_fails_open(
    create_machine: Callable[..., Machine], table: str, fake_clock: FakeClock, dependency: Dependency
) -> None:
    machine = create_machine(asl.CIRCUIT_BREAKER, values("no-such-table"))

    execution = machine.run(INPUT)

    assert execution.status == "SUCCEEDED"
    assert [a.get("error") for a in execution.attempts("ReadCircuit")] == [
        "DynamoDB.ResourceNotFoundException"
    ]
    assert dependency.calls == 1


@pytest.mark.parametrize(
    "payload",
    [
        {"request": {}, "config": CONFIG},
        {"circuit": CIRCUIT, "request": {}, "config": {"failureThreshold": 0, "recoverySeconds": 30}},
        {"circuit": CIRCUIT, "request": {}, "config": {"failureThreshold": "5", "recoverySeconds": 30}},
    ],
)
def test_invalid_input_is_rejected_before_any_call(
    breaker: Machine, dependency: Dependency, payload: dict
) -> None:
    execution = breaker.run(payload)

    assert (execution.status, execution.error) == ("FAILED", "InvalidInput")
    assert dependency.calls == 0
