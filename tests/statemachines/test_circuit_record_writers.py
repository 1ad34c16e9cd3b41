"""Every writer of a circuit's record on one table, each reading what the others wrote.

The writers: the Powertools breaker (its own PutItem / UpdateItem, through ``FleetCircuitStore`` with the
fleet's streak), ``ops circuit open|close`` (``lambdas.contracts.circuit``'s writes) and the circuit
controller, whose record tasks run here exactly as circuit_controller.asl.json holds them (its Parameters,
with the execution state's paths resolved), so a drift between the ASL and the contract that the static
comparison (test_definitions.py) let through would still show as a record Powertools cannot use.
"""

from __future__ import annotations

import io
import json
import re
import time
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.circuit_breaker import CircuitBreakerConfig, CircuitState
from aws_lambda_powertools.utilities.circuit_breaker.persistence import CircuitBreakerDynamoDBPersistence
from aws_lambda_powertools.utilities.circuit_breaker.persistence.record import CircuitStateRecord

from lambdas.contracts import circuit as circuit_record
from lambdas.shared.fleet_circuit import FleetCircuitStore
from ops import circuit as ops_circuit
from ops.aws import Aws
from ops.console import Console
from tests.statemachines import asl
from tests.statemachines.conftest import REGION

TABLE = "circuits"
CIRCUIT = "partner-api"
RECOVERY_SECONDS = 30
_JSON_TO_STRING = re.compile(r"States\.JsonToString\((\$\.[\w.]+)\)")
_PATH = re.compile(r"\$\.[\w.]+")


@pytest.fixture
def table(aws: None, dynamodb: Any) -> str:
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": circuit_record.RECORD_KEY, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": circuit_record.RECORD_KEY, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return TABLE


class Controller:
    """The controller's record tasks, run as the ASL holds them, for an execution at unix time ``now``."""

    def __init__(self) -> None:
        definition = asl.fill(
            asl.CIRCUIT_CONTROLLER,
            {"CircuitTableName": TABLE, "ClockFunctionArn": "clock", "ProbeFunctionArn": "probe"},
        )
        self.tasks = asl.circuit_record_tasks(definition)
        self.client = boto3.client("dynamodb", region_name=REGION)

    def run(self, task: str, now: int) -> dict[str, Any] | None:
        """The task's answer; None when its condition refused the write (the ASL catches that)."""
        action, parameters = self.tasks[task]
        state = {
            "circuit": CIRCUIT,
            "clock": {"now": now, "expiration": now + RECOVERY_SECONDS + 3600},
        }
        request = _resolve(parameters, state)
        call = {"updateItem": self.client.update_item, "getItem": self.client.get_item}[action]
        try:
            answer: dict[str, Any] = call(**request)
        except self.client.exceptions.ConditionalCheckFailedException:
            return None
        return answer


def _resolve(node: Any, state: dict[str, Any]) -> Any:
    """The Parameters with each ``"key.$"`` evaluated against the execution state (the forms the record
    tasks use: a path, States.JsonToString of a path)."""
    if isinstance(node, list):
        return [_resolve(value, state) for value in node]
    if not isinstance(node, dict):
        return node
    resolved: dict[str, Any] = {}
    for key, value in node.items():
        if not key.endswith(".$"):
            resolved[key] = _resolve(value, state)
        elif match := _JSON_TO_STRING.fullmatch(value):
            resolved[key[:-2]] = json.dumps(_at(match.group(1), state))
        elif _PATH.fullmatch(value):
            resolved[key[:-2]] = _at(value, state)
        else:
            raise AssertionError(f"a record task's expression this test does not evaluate: {value}")
    return resolved


def _at(path: str, state: dict[str, Any]) -> Any:
    found: Any = state
    for part in path.removeprefix("$.").split("."):
        found = found[part]
    return found


def powertools() -> CircuitBreakerDynamoDBPersistence:
    """A breaker's view of the record, uncached: what the next call would act on."""
    persistence = CircuitBreakerDynamoDBPersistence(
        table_name=TABLE, boto3_client=boto3.client("dynamodb", region_name=REGION)
    )
    persistence.configure(
        CircuitBreakerConfig(recovery_timeout=RECOVERY_SECONDS, local_cache_max_age=0), CIRCUIT
    )
    return persistence


def fleet() -> FleetCircuitStore:
    store = FleetCircuitStore(
        TABLE, cache_seconds=0, boto3_client=boto3.client("dynamodb", region_name=REGION)
    )
    store.configure(CircuitBreakerConfig(recovery_timeout=RECOVERY_SECONDS, local_cache_max_age=0), CIRCUIT)
    return store


def ops(target: str, now: int) -> tuple[int, dict[str, Any]]:
    """``ops circuit open|close CIRCUIT --yes --json``: its exit code and result."""
    out = io.StringIO()
    console = Console(
        stdin=io.StringIO(), stdout=out, stderr=io.StringIO(), json_output=True, assume_yes=True
    )
    code = ops_circuit.force(
        Aws(session=boto3.Session(region_name=REGION)), console, TABLE, CIRCUIT, target, now=lambda: now
    )
    return code, json.loads(out.getvalue())


def raw() -> dict[str, Any] | None:
    item: dict[str, Any] | None = (
        boto3.client("dynamodb", region_name=REGION)
        .get_item(TableName=TABLE, Key=circuit_record.item_key(CIRCUIT), ConsistentRead=True)
        .get("Item")
    )
    return item


def seen() -> tuple[str | None, int | None, int | None]:
    """(state, failure_count, opened_at) of the raw record through the contract's reader."""
    item = raw()
    assert item is not None
    record = circuit_record.CircuitRecord.from_item(item)
    return record.state, record.failure_count, record.opened_at


def state() -> CircuitStateRecord:
    return powertools().get_state(CIRCUIT)


def test_the_fleet_the_controller_and_powertools_share_one_record(table: str) -> None:
    now = int(time.time())
    controller = Controller()
    store = fleet()
    assert store.add_failure(CIRCUIT) == 1 and store.add_failure(CIRCUIT) == 2  # two environments failed

    # The error alarm's controller forces the record OPEN: Powertools fails fast on it, the streak is gone.
    assert controller.run("EnsureCircuitOpen", now) is not None
    record = state()
    assert record.state is CircuitState.OPEN and record.opened_at == now and record.failure_count == 0
    assert circuit_record.RECORD_FLEET_FAILURES not in (raw() or {})
    assert ops_circuit.describe(CIRCUIT, raw(), now)["state"] == circuit_record.OPEN
    # A second alarm-started controller leaves the opening alone; the breaker's claim reads it.
    assert controller.run("EnsureCircuitOpen", now + 5) is None and state().opened_at == now
    confirmed = controller.run("ConfirmCircuitOpen", now + 5)
    assert confirmed is not None and confirmed["Item"]["state"]["S"] == circuit_record.OPEN

    # One environment probes (Powertools' election on the controller's record), the canary still fails.
    assert powertools().try_acquire_half_open(CIRCUIT, "env-1", opened_at=now)
    assert controller.run("ReopenCircuit", now + 40) is not None
    record = state()
    assert record.state is CircuitState.OPEN and record.opened_at == now + 40
    assert record.half_open_owner is None and record.probe_lease_expiry is None  # the lease is released
    assert powertools().try_acquire_half_open(CIRCUIT, "env-2", opened_at=now + 40)  # the next election

    # Healthy again: closed for Powertools, a new streak starts from nothing, ops has nothing to close.
    assert controller.run("CloseCircuit", now + 80) is not None
    record = state()
    assert record.state is CircuitState.CLOSED and record.failure_count == 0 and record.opened_at is None
    assert record.half_open_owner is None and record.probe_lease_expiry is None
    checked = controller.run("CheckCircuitClosed", now + 80)
    assert checked is not None and checked["Item"] == {"state": {"S": "CLOSED"}}
    assert store.add_failure(CIRCUIT) == 1
    code, result = ops(circuit_record.CLOSED, now + 90)
    assert code == 0 and result["changed"] is False


def test_an_operators_writes_and_the_controllers_guard_each_other(table: str) -> None:
    now = int(time.time())
    controller = Controller()

    code, result = ops(circuit_record.OPEN, now)  # no record yet
    assert code == 0 and result["after"]["state"] == circuit_record.OPEN
    record = state()
    assert record.state is CircuitState.OPEN and record.opened_at == now and record.failure_count == 0
    # The controller sees the operator's opening as open: it neither forces it again nor refuses to move it.
    assert controller.run("EnsureCircuitOpen", now + 5) is None and state().opened_at == now
    assert controller.run("ReopenCircuit", now + 40) is not None and state().opened_at == now + 40
    assert controller.run("CloseCircuit", now + 80) is not None and state().state is CircuitState.CLOSED

    # A breaker trips and elects a prober; the operator closes it and the controller's close stands down.
    powertools().save_open(CIRCUIT, failure_count=5, opened_at=now + 100)
    assert powertools().try_acquire_half_open(CIRCUIT, "env-1", opened_at=now + 100)
    code, result = ops(circuit_record.CLOSED, now + 110)
    assert code == 0 and result["after"]["state"] == circuit_record.CLOSED
    record = state()
    assert record.state is CircuitState.CLOSED and record.failure_count == 0 and record.opened_at is None
    assert record.half_open_owner is None and record.probe_lease_expiry is None
    assert controller.run("CloseCircuit", now + 120) is None  # already CLOSED: the ASL carries on

    # The operator opens a circuit the fleet was failing on: the streak ends, Powertools can elect a prober.
    assert fleet().add_failure(CIRCUIT) == 1
    code, _ = ops(circuit_record.OPEN, now + 130)
    assert code == 0 and circuit_record.RECORD_FLEET_FAILURES not in (raw() or {})
    assert state().failure_count == 0  # kept from the closed record
    assert powertools().try_acquire_half_open(CIRCUIT, "env-2", opened_at=now + 130)


def test_powertools_transitions_through_the_fleet_store_meet_the_controllers_guards(table: str) -> None:
    now = int(time.time())
    controller = Controller()
    store = fleet()
    store.add_failure(CIRCUIT)

    store.save_open(CIRCUIT, failure_count=5, opened_at=now)  # the breaker trips (PutItem: streak gone)
    assert controller.run("EnsureCircuitOpen", now + 1) is None  # the breaker's opening stands
    assert seen() == (circuit_record.OPEN, 5, now)
    assert store.try_acquire_half_open(CIRCUIT, "env-1", opened_at=now)
    store.save_reopen(CIRCUIT, opened_at=now + 30)  # the probe failed (UpdateItem)
    assert controller.run("ReopenCircuit", now + 60) is not None
    assert seen() == (circuit_record.OPEN, 0, now + 60)
    assert store.try_acquire_half_open(CIRCUIT, "env-2", opened_at=now + 60)
    store.save_closed(CIRCUIT)  # the probe succeeded
    assert controller.run("CloseCircuit", now + 90) is None  # nothing left to close
    assert controller.run("EnsureCircuitOpen", now + 100) is not None  # a later alarm may open it again
    assert seen() == (circuit_record.OPEN, 0, now + 100)
