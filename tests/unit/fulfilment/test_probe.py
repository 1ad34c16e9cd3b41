"""The probe (circuit_controller.asl.json) against the twin.

It makes exactly one attempt and never touches the Powertools breaker: the controller's probe loop is its
retry, and the controller owns the circuit record.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import boto3
import pytest

from lambdas.contracts.log_fields import DEPENDENCY
from lambdas.contracts.metrics import METRIC_CIRCUIT_PROBES_FAILED
from lambdas.fulfilment.environment import Canary
from lambdas.fulfilment.errors import CanaryNotDryRunError
from lambdas.partner_api.faults import FaultDecision, FaultProfile, preset
from lambdas.shared.dependency_client import DependencyResponse
from lambdas.shared.env import ConfigurationError
from localcloud.fault_dependency import FaultDependency
from tests.unit.fulfilment.support import API_KEY, dependency_env
from tests.unit.helpers import (
    REGION,
    FakeLambdaContext,
    closed_port,
    import_fresh,
    log_records,
    metric_points,
    unique_name,
)

CHARGE = {"orderId": "ord-1", "amountCents": 1250, "currency": "EUR"}


@dataclass
class Callers:
    twin: FaultDependency
    env: dict[str, str]
    probe_module: ModuleType

    @property
    def circuit(self) -> str:
        return self.env["DEPENDENCY_NAME"]

    def probe(
        self, *, circuit: str | None = None, number: int = 0, remaining_ms: int = 30_000
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.probe_module.handler(
            {"circuit": circuit or self.circuit, "probe": number},
            FakeLambdaContext(function_name="probe", remaining_ms=remaining_ms),
        )
        return result


CallersFactory = Callable[..., Callers]


@pytest.fixture
def make_callers(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[CallersFactory]:
    twins: list[FaultDependency] = []

    def factory(base_url: str | None = None, **env_overrides: str) -> Callers:
        twin = FaultDependency(api_key=API_KEY, seed=1).start()
        twins.append(twin)
        secret_arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name=unique_name("partner-api-key"), SecretString=API_KEY
        )["ARN"]
        # No circuit table exists and none is configured: the probe must not need one.
        env = dependency_env(base_url or twin.base_url, secret_arn=secret_arn, **env_overrides)
        del env["CIRCUIT_BREAKER_TABLE_NAME"]
        monkeypatch.delenv("CIRCUIT_BREAKER_TABLE_NAME", raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return Callers(twin=twin, env=env, probe_module=import_fresh("lambdas.fulfilment.probe"))

    yield factory
    for twin in twins:
        twin.stop()


def error_name(action: Callable[[], Any]) -> str:
    with pytest.raises(Exception) as raised:
        action()
    return type(raised.value).__name__


# ---------------------------------------------------------------------------------------------- probe


def test_a_healthy_dependency_passes_the_probe(
    make_callers: CallersFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    c = make_callers()

    result = c.probe(number=3)

    assert result["healthy"] is True and result["status"] == 200 and result["probe"] == 3
    assert [call.path for call in c.twin.calls()] == ["/health"]
    [line] = [r for r in log_records(capsys.readouterr().out) if r["message"] == "probe: healthy"]
    assert line["probe"] == 3


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (FaultDecision.error(503), "TransientUpstreamError"),
        (FaultDecision.throttle(retry_after_seconds=5), "TransientUpstreamError"),
        (FaultDecision.error(404), "UpstreamConfigurationError"),  # the client's words for a wrong route
        (FaultDecision.error(400), "PermanentUpstreamError"),
    ],
)
def test_an_unhealthy_dependency_fails_the_probe_once(
    make_callers: CallersFactory, fault: FaultDecision, expected: str
) -> None:
    c = make_callers(DEPENDENCY_MAX_ATTEMPTS="5")
    c.twin.enqueue(fault)

    assert error_name(c.probe) == expected  # the controller's ProbeFailed: backoff, streak reset
    assert c.twin.total_calls == 1


def test_a_failed_probe_is_counted_for_its_dependency_and_a_healthy_one_is_not(
    make_callers: CallersFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """The circuit's alarm reads these (stacks/monitoring.py): while the consumer is paused, nothing else
    says the circuit is still open."""
    c = make_callers()
    c.twin.enqueue(FaultDecision.error(503))
    error_name(c.probe)
    [failed] = metric_points(capsys.readouterr().out, METRIC_CIRCUIT_PROBES_FAILED)
    assert failed[METRIC_CIRCUIT_PROBES_FAILED] == [1.0]
    assert failed["_dimensions"] == {DEPENDENCY, "service"} and failed[DEPENDENCY] == c.circuit

    c.probe()
    assert metric_points(capsys.readouterr().out, METRIC_CIRCUIT_PROBES_FAILED) == []


def test_connection_refused_and_timeouts_are_transient(make_callers: CallersFactory) -> None:
    down = make_callers(base_url=f"http://127.0.0.1:{closed_port()}")
    assert error_name(down.probe) == "TransientUpstreamError"

    slow = make_callers(DEPENDENCY_ATTEMPT_TIMEOUT_MS="200")
    slow.twin.set_profile(FaultProfile(latency_ms=3000))
    started = time.monotonic()
    assert error_name(slow.probe) == "TransientUpstreamError"
    assert time.monotonic() - started < 2.5  # cut by the 200 ms attempt timeout, not served after 3 s


def test_no_time_left_fails_before_calling(make_callers: CallersFactory) -> None:
    c = make_callers()

    assert error_name(lambda: c.probe(remaining_ms=150)) == "BudgetExhaustedError"
    assert c.twin.total_calls == 0


def test_the_probe_has_a_short_budget(make_callers: CallersFactory) -> None:
    c = make_callers(PROBE_TIMEOUT_MS="300", DEPENDENCY_ATTEMPT_TIMEOUT_MS="5000")
    c.twin.set_profile(FaultProfile(latency_ms=4000))  # the "slow" dependency of the cascade scenario

    started = time.monotonic()
    assert error_name(c.probe) == "TransientUpstreamError"

    assert time.monotonic() - started < 3.0  # PROBE_TIMEOUT_MS (0.3 s), not the 5 s attempt timeout nor 4 s


def test_a_probe_for_another_circuit_is_refused(make_callers: CallersFactory) -> None:
    c = make_callers()

    assert error_name(lambda: c.probe(circuit="other")) == "ValidationError"
    assert c.twin.total_calls == 0


@pytest.mark.parametrize(
    ("body", "healthy"),
    [({"status": "ok"}, True), ({"status": "UP"}, True), ({"status": "degraded"}, False), (None, True),
     ("fine", True), ({"checks": []}, True)],
)  # fmt: skip
def test_a_2xx_health_body_that_reports_a_status_must_report_a_healthy_one(
    make_callers: CallersFactory, body: Any, healthy: bool
) -> None:
    assert make_callers().probe_module.reported_healthy(body) is healthy


DRY_RUN_CHARGE = json.dumps(
    {"method": "POST", "path": "/charges", "body": CHARGE, "expectedStatuses": [200]}, separators=(",", ":")
)


def test_a_dry_run_charge_canary_is_healthy_and_charges_nobody(make_callers: CallersFactory) -> None:
    c = make_callers(PROBE_CANARY=DRY_RUN_CHARGE)

    for number in range(3):
        assert c.probe(number=number)["status"] == 200

    calls = c.twin.calls()
    assert [(call.method, call.path, call.status) for call in calls] == [("POST", "/charges", 200)] * 3
    assert {call.idempotency_key for call in calls} == {f"canary-{c.circuit}"}
    assert c.twin.charges_by_order() == {}  # the side effect never happened


def test_the_canary_fails_while_charges_fail_although_health_passes(make_callers: CallersFactory) -> None:
    health = make_callers()
    canary = make_callers(PROBE_CANARY=DRY_RUN_CHARGE)
    for c in (health, canary):
        c.twin.set_profile(preset("charges_down"))

    assert health.probe()["healthy"] is True  # GET /health: the blind spot the canary closes
    assert error_name(canary.probe) == "TransientUpstreamError"
    assert [call.status for call in canary.twin.calls("/charges")] == [503]
    assert canary.twin.charges_by_order() == {}


def test_a_side_effecting_canary_the_partner_did_not_dry_run_is_unhealthy(
    make_callers: CallersFactory,
) -> None:
    probe = make_callers().probe_module
    canary = Canary.model_validate_json(DRY_RUN_CHARGE)
    created = DependencyResponse(status=201, body={"chargeId": "ch_1"}, headers={"Content-Type": "json"})

    with pytest.raises(CanaryNotDryRunError):
        probe.check_canary_response(canary, "partner", created)
    # The header goes out with a fixed key, so a partner that ignores it charges once, never per probe.
    assert probe.canary_headers(canary, "partner") == {"Dry-Run": "true", "Idempotency-Key": "canary-partner"}
    assert probe.canary_headers(Canary(), "partner") == {}


def test_a_canary_answer_outside_the_expected_statuses_is_unhealthy(make_callers: CallersFactory) -> None:
    c = make_callers(PROBE_CANARY='{"method":"GET","path":"/health","expectedStatuses":[204]}')

    assert error_name(c.probe) == "DependencyUnhealthyError"
    assert [call.status for call in c.twin.calls("/health")] == [200]


def test_a_malformed_canary_fails_at_init(make_callers: CallersFactory) -> None:
    with pytest.raises(ConfigurationError, match="PROBE_CANARY"):
        make_callers(PROBE_CANARY='{"method":"DELETE","path":"/charges"}')
