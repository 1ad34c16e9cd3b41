"""circuit_controller on moto with the REAL probe handler.

``lambdas.fulfilment.probe.handler`` is imported the way a cold start does and registered in process; it
calls ``localcloud.fault_dependency.FaultDependency`` over HTTP. The clock is the real clock arithmetic on
a virtual "now" (``FakeClock``), so recovery windows pass without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from lambdas.partner_api.faults import FaultDecision
from localcloud.fault_dependency import FaultDependency
from tests.statemachines.conftest import REGION, FakeClock, Machine
from tests.statemachines.test_circuit_controller import (
    CIRCUIT,
    consumer,
    controller,
    controller_input,
    mapping_state,
    read_record,
)
from tests.unit.fulfilment.support import API_KEY, dependency_env
from tests.unit.helpers import import_fresh, unique_name

__all__ = ["consumer", "controller"]  # fixtures, imported for the controller test

TABLE = "circuits"


@pytest.fixture
def partner() -> Iterator[FaultDependency]:
    with FaultDependency(api_key=API_KEY, seed=5) as twin:
        yield twin


@pytest.fixture
def fake_clock(register: Callable[..., Any]) -> FakeClock:
    fake = FakeClock(tick=1)
    register("clock", fake.handler)
    return fake


def load_probe(
    circuit: str, partner: FaultDependency, monkeypatch: pytest.MonkeyPatch, register: Callable[..., Any]
) -> None:
    secret_arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name=unique_name("partner-api-key"), SecretString=API_KEY
    )["ARN"]
    env = dependency_env(partner.base_url, secret_arn=secret_arn, DEPENDENCY_NAME=circuit)
    env.update(
        {"POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_NAMESPACE": "ResilientServerlessTest"}
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    register("probe", import_fresh("lambdas.fulfilment.probe").handler)


# ---------------------------------------------------------------------------------------------- controller


def test_the_controller_resumes_the_consumer_after_real_healthy_probes(
    controller: Machine,
    consumer: dict[str, str],
    partner: FaultDependency,
    fake_clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    register: Callable[..., Any],
) -> None:
    load_probe(CIRCUIT, partner, monkeypatch, register)
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
