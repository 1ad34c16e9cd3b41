"""ops circuit list/show/open/close on the circuit table, checked against the real Powertools breaker
(CircuitBreakerDynamoDBPersistence on the same table) and the consumer's DependencyClient."""

from __future__ import annotations

import json
import time
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

from lambdas.contracts.api import IDEMPOTENCY_KEY_HEADER
from lambdas.contracts.circuit import RECORD_FLEET_FAILURES
from lambdas.shared.dependency_client import DependencyClient, DependencyUnavailableError, create_session
from lambdas.shared.fleet_circuit import FleetCircuitStore
from localcloud.fault_dependency import FaultDependency
from ops.console import Console
from tests.unit.helpers import REGION, make_policy, unique_name
from tests.unit.ops.conftest import run
from tests.unit.ops.stack_fixture import DeployedStack


def store(table: str) -> CircuitBreakerDynamoDBPersistence:
    return CircuitBreakerDynamoDBPersistence(
        table_name=table, boto3_client=boto3.client("dynamodb", region_name=REGION)
    )


def guarded(table: str, name: str, calls: list[str]) -> Any:
    """A function protected by a Powertools breaker on the circuit table, reading it on every call."""

    @circuit_breaker(
        name=name,
        persistence_store=store(table),
        config=CircuitBreakerConfig(failure_threshold=1, recovery_timeout=60, local_cache_max_age=0),
    )
    def call_partner() -> str:
        calls.append("called")
        return "ok"

    return call_partner


def item(table: str, name: str) -> dict[str, Any] | None:
    response = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName=table, Key={"id": {"S": name}}, ConsistentRead=True
    )
    found: dict[str, Any] | None = response.get("Item")
    return found


def test_open_makes_a_breaker_fail_fast_and_close_lets_it_call_again(stack: DeployedStack) -> None:
    name = unique_name("partner")
    calls: list[str] = []
    call_partner = guarded(stack.circuit_table, name, calls)
    assert call_partner() == "ok" and calls == ["called"]

    opened = run("--stack", stack.name, "circuit", "open", name, "--yes")

    assert opened.code == 0, opened.err
    # The record is what Powertools itself reads: OPEN, opened now.
    record = store(stack.circuit_table).get_state(name)
    assert record.state is CircuitState.OPEN
    assert record.opened_at is not None and abs(record.opened_at - time.time()) < 5
    assert record.half_open_owner is None and record.probe_lease_expiry is None
    with pytest.raises(CircuitBreakerOpenError):
        call_partner()
    assert calls == ["called"]  # the protected function was not called

    closed = run("--stack", stack.name, "circuit", "close", name, "--yes")

    assert closed.code == 0, closed.err
    record = store(stack.circuit_table).get_state(name)
    assert record.state is CircuitState.CLOSED and record.failure_count == 0 and record.opened_at is None
    raw = item(stack.circuit_table, name)
    assert raw is not None and not {"opened_at", "half_open_owner", "probe_lease_expiry"} & set(raw)
    assert call_partner() == "ok" and calls == ["called", "called"]


def test_force_open_stops_the_consumers_dependency_client_from_calling(
    stack: DeployedStack, twin: FaultDependency
) -> None:
    session = create_session()
    policy = make_policy(twin.base_url, breaker_recovery_seconds=60)
    client = DependencyClient(
        policy,
        breaker_table_name=stack.circuit_table,
        dynamodb_client=boto3.client("dynamodb", region_name=REGION),
        breaker_cache_seconds=0,
        session=session,
    )
    body = {"orderId": "ord-1", "amountCents": 100, "currency": "EUR"}

    assert run("--stack", stack.name, "circuit", "open", policy.name, "--yes").code == 0
    with pytest.raises(DependencyUnavailableError) as caught:
        client.post(
            "/charges", json=body, headers={IDEMPOTENCY_KEY_HEADER: "k-1"}, remaining_ms=lambda: 5_000
        )
    assert twin.total_calls == 0
    assert 55 <= caught.value.retry_in_seconds <= 60  # the probe is due one recovery time after the force

    assert run("--stack", stack.name, "circuit", "close", policy.name, "--yes").code == 0
    client.post("/charges", json=body, headers={IDEMPOTENCY_KEY_HEADER: "k-1"}, remaining_ms=lambda: 5_000)
    assert twin.total_calls == 1
    session.close()


def test_show_reads_what_a_tripped_breaker_wrote(stack: DeployedStack) -> None:
    name = unique_name("partner")

    @circuit_breaker(
        name=name,
        persistence_store=store(stack.circuit_table),
        config=CircuitBreakerConfig(failure_threshold=2, recovery_timeout=30, local_cache_max_age=0),
    )
    def failing() -> None:
        raise TimeoutError("partner timed out")

    for _ in range(2):
        with pytest.raises(TimeoutError):
            failing()

    result = run("--stack", stack.name, "--json", "circuit", "show", name)
    listed = run("--stack", stack.name, "--json", "circuit", "list")

    assert result.code == 0, result.err
    shown = json.loads(result.out)
    assert shown["state"] == "OPEN" and shown["failure_count"] == 2 and shown["record"] is True
    assert shown["open_for_seconds"] < 5
    assert [c["name"] for c in json.loads(listed.out)["circuits"]] == [name]


def test_show_of_a_circuit_without_a_record_is_closed(stack: DeployedStack) -> None:
    result = run("circuit", "show", "never-opened", "--table", stack.circuit_table)

    assert result.code == 0
    assert "CLOSED (no record" in result.out


def test_close_of_a_closed_circuit_writes_nothing(stack: DeployedStack) -> None:
    result = run("--stack", stack.name, "circuit", "close", "never-opened")

    assert result.code == 0  # nothing to do, so nothing to confirm
    assert "already closed" in result.out
    assert item(stack.circuit_table, "never-opened") is None


def test_open_needs_confirmation(stack: DeployedStack) -> None:
    name = unique_name("partner")

    result = run("--stack", stack.name, "circuit", "open", name)

    assert result.code == 3 and "pass --yes" in result.err
    assert item(stack.circuit_table, name) is None


def test_a_transition_made_while_the_operator_decides_is_not_overwritten(
    stack: DeployedStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = unique_name("partner")
    persistence = store(stack.circuit_table)
    persistence.save_open(name, failure_count=5, opened_at=int(time.time()) - 100)
    real_confirm = Console.confirm

    def a_probe_closes_it_meanwhile(self: Console, action: str) -> None:
        real_confirm(self, action)
        persistence.save_closed(name)  # a breaker's successful probe, between read and write

    monkeypatch.setattr(Console, "confirm", a_probe_closes_it_meanwhile)

    result = run("--stack", stack.name, "circuit", "open", name, "--yes")

    assert result.code == 1
    assert "changed while you were deciding" in result.err
    record = item(stack.circuit_table, name)
    assert record is not None and record["state"]["S"] == "CLOSED"  # the probe's write stands


def test_unknown_table_is_a_usage_error(aws: None) -> None:
    result = run("circuit", "show", "partner", "--table", "no-such-table")

    assert result.code == 2
    assert "no table" in result.err


def test_a_forced_state_ends_the_fleets_failure_streak(stack: DeployedStack) -> None:
    name = unique_name("partner")
    fleet = FleetCircuitStore(
        stack.circuit_table, cache_seconds=0, boto3_client=boto3.client("dynamodb", region_name=REGION)
    )
    for _ in range(2):
        fleet.add_failure(name)  # two environments failed a call each
    shown = run("--stack", stack.name, "--json", "circuit", "show", name)
    assert json.loads(shown.out)["fleet_failures"] == 2 and json.loads(shown.out)["state"] == "CLOSED"

    assert run("--stack", stack.name, "circuit", "open", name, "--yes").code == 0
    opened = item(stack.circuit_table, name)
    assert opened is not None and opened["state"]["S"] == "OPEN" and RECORD_FLEET_FAILURES not in opened

    assert run("--stack", stack.name, "circuit", "close", name, "--yes").code == 0
    assert fleet.add_failure(name) == 1  # a new streak starts from nothing
