"""circuit_breaker / circuit_controller on moto with the REAL dependency_call and probe handlers.

``lambdas.fulfilment.dependency_call.handler`` and ``lambdas.fulfilment.probe.handler`` are imported the
way a cold start does and registered in process; they call ``localcloud.fault_dependency.FaultDependency``
over HTTP. The clock is the real clock arithmetic on a virtual "now" (``FakeClock``), so recovery windows
pass without sleeping.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from lambdas.partner_api.faults import FaultDecision
from lambdas.shared.dependency_client import DependencyClient, DependencyUnavailableError, create_session
from localcloud.fault_dependency import FaultDependency
from tests.statemachines import asl
from tests.statemachines.conftest import REGION, FakeClock, Machine, function_arn
from tests.statemachines.test_circuit_controller import (
    CIRCUIT,
    consumer,
    controller,
    controller_input,
    mapping_state,
    read_record,
)
from tests.unit.fulfilment.support import API_KEY, dependency_env
from tests.unit.helpers import import_fresh, make_policy, unique_name

__all__ = ["consumer", "controller"]  # fixtures, imported for the controller test

TABLE = "circuits"
THRESHOLD = 2
RECOVERY = 30
CHARGE = {"orderId": "ord-1", "amountCents": 1250, "currency": "EUR"}


@pytest.fixture
def partner() -> Iterator[FaultDependency]:
    with FaultDependency(api_key=API_KEY, seed=5) as twin:
        yield twin


@pytest.fixture
def fake_clock(register: Callable[..., Any]) -> FakeClock:
    fake = FakeClock(tick=1)
    register("clock", fake.handler)
    return fake


def load(
    module: str,
    circuit: str,
    partner: FaultDependency,
    monkeypatch: pytest.MonkeyPatch,
    register: Callable[..., Any],
) -> Any:
    secret_arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name=unique_name("partner-api-key"), SecretString=API_KEY
    )["ARN"]
    env = dependency_env(partner.base_url, secret_arn=secret_arn, DEPENDENCY_NAME=circuit)
    env.update(
        {"POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_NAMESPACE": "ResilientServerlessTest"}
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    handler_module = import_fresh(f"lambdas.fulfilment.{module}")
    register(module.replace("_", "-"), handler_module.handler)
    return handler_module


# ---------------------------------------------------------------------------------------------- breaker


@pytest.fixture
def breaker(create_machine: Callable[..., Machine], dynamodb: Any, fake_clock: FakeClock) -> Machine:
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return create_machine(
        asl.CIRCUIT_BREAKER,
        {
            "CircuitTableName": TABLE,
            "ClockFunctionArn": function_arn("clock"),
            "DependencyCallFunctionArn": function_arn("dependency-call"),
        },
    )


def state_of(circuit: str) -> dict[str, Any] | None:
    item = (
        boto3.client("dynamodb", region_name=REGION)
        .get_item(TableName=TABLE, Key={"id": {"S": circuit}}, ConsistentRead=True)
        .get("Item")
    )
    if item is None:
        return None
    return {k: (v.get("S") if "S" in v else int(v["N"])) for k, v in item.items()}


def test_the_breaker_workflow_opens_fails_fast_probes_and_closes_with_the_real_call(
    breaker: Machine,
    partner: FaultDependency,
    fake_clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    register: Callable[..., Any],
) -> None:
    circuit = unique_name("partner")
    load("dependency_call", circuit, partner, monkeypatch, register)
    request = {"method": "POST", "path": "/charges", "body": CHARGE, "idempotencyKey": "order-1:charge"}
    workflow_input = {
        "circuit": circuit,
        "request": request,
        "config": {"failureThreshold": THRESHOLD, "recoverySeconds": RECOVERY},
    }
    partner.set_profile("outage")

    for count in range(1, THRESHOLD + 1):  # each execution is ONE call: the workflow counts, no retries
        execution = breaker.run(workflow_input)
        assert (execution.status, execution.error) == ("FAILED", "TransientUpstreamError")
        assert partner.total_calls == count
    assert state_of(circuit)["state"] == "OPEN"  # type: ignore[index]

    # OPEN and not due: fail fast, the dependency is not called. The Powertools breaker agrees.
    execution = breaker.run(workflow_input)
    assert (execution.status, execution.error) == ("FAILED", "CircuitOpen")
    assert partner.total_calls == THRESHOLD
    client = DependencyClient(
        make_policy(partner.base_url, name=circuit),
        breaker_table_name=TABLE,
        dynamodb_client=boto3.client("dynamodb", region_name=REGION),
        breaker_cache_seconds=0,
        session=create_session(),
        rng=random.Random(1),
    )
    with pytest.raises(DependencyUnavailableError):
        client.get("/health", remaining_ms=lambda: 5_000)

    # Due: one execution probes with the real call, which now succeeds, and closes the circuit.
    partner.set_profile("healthy")
    fake_clock.advance(RECOVERY)
    execution = breaker.run(workflow_input)

    assert execution.status == "SUCCEEDED"
    assert "CloseCircuit" in execution.states
    assert execution.output["status"] == 201 and execution.output["body"]["orderId"] == "ord-1"
    assert state_of(circuit)["state"] == "CLOSED"  # type: ignore[index]
    assert [c.idempotency_key for c in partner.calls("/charges")][-1] == "order-1:charge"
    assert partner.charges_by_order() == {"ord-1": 1}


def test_a_4xx_from_the_real_call_is_not_a_breaker_failure(
    breaker: Machine,
    partner: FaultDependency,
    monkeypatch: pytest.MonkeyPatch,
    register: Callable[..., Any],
) -> None:
    circuit = unique_name("partner")
    load("dependency_call", circuit, partner, monkeypatch, register)
    workflow_input = {
        "circuit": circuit,
        "request": {"method": "POST", "path": "/charges", "body": {"orderId": "ord-1"}},  # invalid body
        "config": {"failureThreshold": 1, "recoverySeconds": RECOVERY},
    }

    execution = breaker.run(workflow_input)

    assert (execution.status, execution.error) == ("FAILED", "PermanentUpstreamError")
    assert "CountFailure" not in execution.states
    assert state_of(circuit) is None  # still CLOSED: the dependency answered, our request was wrong
    assert [c.status for c in partner.calls("/charges")] == [400]


# ---------------------------------------------------------------------------------------------- controller


def test_the_controller_resumes_the_consumer_after_real_healthy_probes(
    controller: Machine,
    consumer: dict[str, str],
    partner: FaultDependency,
    fake_clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    register: Callable[..., Any],
) -> None:
    load("probe", CIRCUIT, partner, monkeypatch, register)
    # What a CircuitOpened event from the consumer leads to: the record is OPEN, the controller starts.
    boto3.client("dynamodb", region_name=REGION).put_item(
        TableName=TABLE,
        Item={
            "id": {"S": CIRCUIT},
            "state": {"S": "OPEN"},
            "failure_count": {"N": "5"},
            "opened_at": {"N": str(fake_clock.now - 1)},
        },
    )
    partner.enqueue(FaultDecision.error(503))  # still down at the first probe, then healthy

    execution = controller.run(controller_input(consumer["uuid"]), timeout=60)

    assert execution.status == "SUCCEEDED", execution.cause
    assert [c.status for c in partner.calls("/health")] == [503, 200, 200]  # 2 consecutive successes
    probe_errors = [a.get("error") for a in execution.attempts("Probe")]
    assert probe_errors == ["TransientUpstreamError", None, None]
    assert read_record(CIRCUIT)["state"] == "CLOSED"  # type: ignore[index]
    assert mapping_state(consumer["uuid"]) == "Enabled"
