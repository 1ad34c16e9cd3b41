"""Charge / Ship / Notify task handlers against the partner twin on 127.0.0.1, breaker state on moto.

Real pieces: the handler module (cold-start init included), the dependency client with its shared
Powertools breaker (moto DynamoDB), the API key in moto Secrets Manager, the twin over HTTP. The error a
handler raises is what Step Functions matches in the ASL, so tests assert the exception's class NAME.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from lambdas.fulfilment import tasks
from lambdas.fulfilment.errors import UnconfirmedResultError
from lambdas.fulfilment.partner import Partner
from lambdas.partner_api.faults import FaultDecision
from lambdas.shared.dependency_client import DependencyResponse
from lambdas.shared.env import ConfigurationError
from localcloud.fault_dependency import FaultDependency
from tests.unit.fulfilment.support import API_KEY, ORDER, create_circuit_bus, dependency_env, task_event
from tests.unit.helpers import (
    REGION,
    BreakerTable,
    FakeLambdaContext,
    create_key_table,
    import_fresh,
    log_records,
    metric_points,
    unique_name,
)
from tests.waiting import wait_until


@dataclass
class Tasks:
    twin: FaultDependency
    env: dict[str, str]
    breaker: BreakerTable
    handlers: dict[str, Callable[..., dict[str, Any]]]
    capsys: pytest.CaptureFixture[str]

    def run(self, step: str, event: dict[str, Any], remaining_ms: int = 30_000) -> dict[str, Any]:
        return self.handlers[step](
            event, FakeLambdaContext(function_name=step.lower(), remaining_ms=remaining_ms)
        )

    def error_of(self, step: str, event: dict[str, Any], remaining_ms: int = 30_000) -> BaseException:
        with pytest.raises(Exception) as raised:
            self.run(step, event, remaining_ms)
        return raised.value

    def charge_and_ship(self, execution: str = "exec-1") -> tuple[dict[str, Any], dict[str, Any]]:
        charge = self.run("Charge", task_event("Charge", execution=execution))
        shipment = self.run("Ship", task_event("Ship", execution=execution, charge=charge))
        return charge, shipment

    @property
    def dependency(self) -> str:
        return self.env["DEPENDENCY_NAME"]

    def output(self) -> str:
        return self.capsys.readouterr().out


TasksFactory = Callable[..., Tasks]


@pytest.fixture
def make_tasks(
    aws: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[TasksFactory]:
    twins: list[FaultDependency] = []

    def factory(partner_api_key: str = API_KEY, **env_overrides: str) -> Tasks:
        twin = FaultDependency(api_key=partner_api_key, seed=1).start()
        twins.append(twin)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_key_table(dynamodb, "circuits")
        secret_arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="partner-api-key", SecretString=API_KEY
        )["ARN"]
        env = dependency_env(twin.base_url, secret_arn=secret_arn, **env_overrides)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        module = import_fresh("lambdas.fulfilment.handler")
        handlers = {step: getattr(module, f"{step.lower()}_handler") for step in ("Charge", "Ship", "Notify")}
        return Tasks(
            twin=twin,
            env=env,
            breaker=BreakerTable(name="circuits", client=dynamodb),
            handlers=handlers,
            capsys=capsys,
        )

    yield factory
    for twin in twins:
        twin.stop()


# ---------------------------------------------------------------------------------------------- charge


def test_charge_captures_the_payment_with_the_payment_step_key(make_tasks: TasksFactory) -> None:
    t = make_tasks()

    result = t.run("Charge", task_event("Charge", execution="PaymentReceived-pay-1-abc"))

    assert result["orderId"] == "ord-1" and result["chargeId"].startswith("ch_")
    assert (result["amountCents"], result["currency"]) == (1250, "EUR")
    assert result["idempotencyKey"] == "PaymentReceived:pay-1:Charge"
    assert (result["replayed"], result["attempts"]) == (False, 1)
    [call] = t.twin.calls("/charges")
    assert (call.status, call.idempotency_key) == (201, "PaymentReceived:pay-1:Charge")
    assert t.twin.charges_by_order() == {"ord-1": 1}  # the twin checked the API key from the secret
    points = metric_points(t.output(), tasks.STEP_SUCCEEDED_METRIC)
    assert [p["step"] for p in points] == ["Charge"]


def test_transient_errors_are_retried_inside_the_budget_then_succeed(make_tasks: TasksFactory) -> None:
    t = make_tasks()
    t.twin.enqueue(FaultDecision.error(503))

    result = t.run("Charge", task_event("Charge"))

    assert result["attempts"] == 2
    assert [c.status for c in t.twin.calls("/charges")] == [503, 201]
    assert t.twin.charges_by_order() == {"ord-1": 1}


def test_a_workflow_retry_after_a_transient_failure_charges_once(make_tasks: TasksFactory) -> None:
    t = make_tasks()
    t.twin.enqueue(FaultDecision.error(503), FaultDecision.throttle(retry_after_seconds=0))

    error = t.error_of("Charge", task_event("Charge"))
    assert type(error).__name__ == "TransientUpstreamError"  # the ASL retries it (short backoff)

    result = t.run("Charge", task_event("Charge", attempt=1))  # Step Functions' retry: same payload

    assert result["chargeId"].startswith("ch_")
    assert {c.idempotency_key for c in t.twin.calls("/charges")} == {"PaymentReceived:pay-1:Charge"}
    assert t.twin.charges_by_order() == {"ord-1": 1}


def test_a_replay_or_re_run_in_a_new_execution_reaches_the_partner_as_a_duplicate(
    make_tasks: TasksFactory,
) -> None:
    """An archive replay (``...#replay:<name>``) or a re-run of a failed execution: new name, same payment."""
    t = make_tasks()
    first_charge, first_shipment = t.charge_and_ship(execution="PaymentReceived-pay-1")
    first_note = t.run(
        "Notify",
        task_event("Notify", execution="PaymentReceived-pay-1", charge=first_charge, shipment=first_shipment),
    )

    rerun = "PaymentReceived-pay-1-replay-4f2a9c"
    charge, shipment = t.charge_and_ship(execution=rerun)
    note = t.run("Notify", task_event("Notify", execution=rerun, charge=charge, shipment=shipment))

    assert t.twin.charges_by_order() == {"ord-1": 1}
    assert charge["replayed"] and charge["chargeId"] == first_charge["chargeId"]
    assert shipment["replayed"] and shipment["shipmentId"] == first_shipment["shipmentId"]
    assert note["replayed"] and note["notificationId"] == first_note["notificationId"]
    assert len(t.twin._service.shipments) == len(t.twin._service.notifications) == 1
    for path in ("/charges", "/shipments", "/notifications"):
        assert len({c.idempotency_key for c in t.twin.calls(path)}) == 1, path


def test_a_rejected_charge_is_a_permanent_error_and_not_retried(make_tasks: TasksFactory) -> None:
    t = make_tasks()
    t.twin.enqueue(FaultDecision.error(422))

    error = t.error_of("Charge", task_event("Charge"))

    assert type(error).__name__ == "PermanentUpstreamError"  # MaxAttempts 0 in the ASL
    assert len(t.twin.calls("/charges")) == 1  # no client retry either
    assert t.breaker.state(t.dependency) in (None, "CLOSED")  # a bad request says nothing about its health


def test_a_refused_key_is_a_configuration_error_that_counts_toward_the_breaker(
    make_tasks: TasksFactory,
) -> None:
    t = make_tasks(partner_api_key="another-key", BREAKER_FAILURE_THRESHOLD="1")  # the partner answers 401

    error = t.error_of("Charge", task_event("Charge"))

    # No retrier in the ASL names it: the final Catch records and fails the step, as for a permanent error.
    assert type(error).__name__ == "UpstreamConfigurationError"
    assert len(t.twin.calls("/charges")) == 1  # the re-read secret held the same key: no second attempt
    assert t.breaker.state(t.dependency) == "OPEN"


def test_an_open_circuit_fails_fast_as_dependency_unavailable(make_tasks: TasksFactory) -> None:
    t = make_tasks(BREAKER_FAILURE_THRESHOLD="1")
    t.twin.set_profile("outage")

    assert type(t.error_of("Charge", task_event("Charge"))).__name__ == "TransientUpstreamError"
    assert t.breaker.state(t.dependency) == "OPEN"
    calls = t.twin.total_calls

    error = t.error_of("Charge", task_event("Charge", attempt=1))

    assert type(error).__name__ == "DependencyUnavailableError"  # the ASL's long-backoff retrier
    assert t.twin.total_calls == calls  # the partner was not called


CHARGED = {
    "orderId": ORDER["orderId"],
    "chargeId": "ch-1",
    "amountCents": ORDER["amountCents"],
    "currency": ORDER["currency"],
    "idempotencyKey": "PaymentReceived:pay-1:Charge",
}


@pytest.mark.parametrize(
    ("until", "expected"),
    [
        (None, "DependencyUnavailableError"),  # no deadline: the workflow's retrier, then the failure record
        (4_102_444_800.0, "DependencyUnavailableError"),  # 2100: the workflow waits on and tries again
        (0.0, "CircuitWaitExpiredError"),  # long past: the workflow stops waiting and records it
    ],
)
def test_an_open_circuit_past_the_executions_circuit_wait_deadline_ends_the_wait(
    make_tasks: TasksFactory, until: float | None, expected: str
) -> None:
    t = make_tasks(BREAKER_FAILURE_THRESHOLD="1")
    t.twin.set_profile("outage")
    assert type(t.error_of("Charge", task_event("Charge"))).__name__ == "TransientUpstreamError"
    calls = t.twin.total_calls

    for step, event in (
        ("Charge", task_event("Charge", attempt=1, circuit_wait_until=until)),
        ("Ship", task_event("Ship", charge=CHARGED, circuit_wait_until=until)),
    ):
        error = t.error_of(step, event)
        assert type(error).__name__ == expected, step
        if expected == "CircuitWaitExpiredError":
            assert (
                "circuit is OPEN" in str(error)
                and type(error.__cause__).__name__ == "DependencyUnavailableError"
            )
    assert t.twin.total_calls == calls  # the partner was not called


def test_the_charge_task_announces_the_circuit_it_opened(make_tasks: TasksFactory) -> None:
    service = unique_name("fulfilment")
    bus = create_circuit_bus(service)
    t = make_tasks(
        POWERTOOLS_SERVICE_NAME=service, CIRCUIT_EVENTS_BUS_NAME=bus.name, BREAKER_FAILURE_THRESHOLD="1"
    )
    t.twin.set_profile("outage")

    assert type(t.error_of("Charge", task_event("Charge"))).__name__ == "TransientUpstreamError"
    assert (
        type(t.error_of("Charge", task_event("Charge", attempt=1))).__name__ == "DependencyUnavailableError"
    )

    [event] = bus.published()  # one opening, one event; the rejected retry adds none
    assert (event["source"], event["detail-type"]) == (f"{service}.circuits", "CircuitOpened")
    assert event["detail"]["circuit"] == event["detail"]["dependency"] == t.dependency


def test_no_time_left_fails_before_calling(make_tasks: TasksFactory) -> None:
    t = make_tasks()

    # 250 ms left - 100 ms margin - 200 ms connect timeout: no attempt fits in the 30 s Task budget's rest.
    error = t.error_of("Charge", task_event("Charge"), remaining_ms=250)

    assert type(error).__name__ == "BudgetExhaustedError"
    assert t.twin.total_calls == 0


@pytest.mark.parametrize(
    "event",
    [
        {"step": "Charge"},
        task_event("Ship"),  # a Ship event sent to the Charge function
        {**task_event("Charge"), "order": {**ORDER, "amountCents": "12.50"}},
        {**task_event("Charge"), "executionName": ""},
        # Without the payment there is nothing to key the charge on that a re-run would repeat.
        {**task_event("Charge"), "order": {k: v for k, v in ORDER.items() if k != "paymentId"}},
        {**task_event("Charge"), "unexpected": True},
    ],
)
def test_an_event_off_contract_is_a_validation_error(make_tasks: TasksFactory, event: dict[str, Any]) -> None:
    t = make_tasks()

    error = t.error_of("Charge", event)

    assert type(error).__name__ == "ValidationError"  # never retried by the ASL
    assert t.twin.total_calls == 0


# ---------------------------------------------------------------------------------------------- ship


def test_ship_books_the_shipment_of_the_charge(make_tasks: TasksFactory) -> None:
    t = make_tasks()

    charge, shipment = t.charge_and_ship()

    assert shipment["shipmentId"].startswith("sh_")
    assert (shipment["orderId"], shipment["chargeId"]) == ("ord-1", charge["chargeId"])
    assert shipment["idempotencyKey"] == "PaymentReceived:pay-1:Ship"
    [call] = t.twin.calls("/shipments")
    assert call.idempotency_key == "PaymentReceived:pay-1:Ship"


def test_a_retry_after_an_unknown_outcome_causes_one_shipment(make_tasks: TasksFactory) -> None:
    """The first attempt times out after the partner created the shipment; the retry replays it."""
    t = make_tasks(DEPENDENCY_MAX_ATTEMPTS="1", DEPENDENCY_ATTEMPT_TIMEOUT_MS="300")
    charge = t.run("Charge", task_event("Charge"))
    t.twin.enqueue(FaultDecision.passthrough(latency_ms=800))  # served, but after the client gave up
    event = task_event("Ship", charge=charge)

    error = t.error_of("Ship", event)
    assert type(error).__name__ == "TransientUpstreamError"
    # The slow request is still being served after the client left.
    wait_until(lambda: t.twin.calls("/shipments"), what="the abandoned shipment request served")

    retried = t.run("Ship", {**event, "attempt": 1})
    again = t.run("Ship", {**event, "attempt": 2})

    assert retried["replayed"] and again["replayed"]
    assert retried["shipmentId"] == again["shipmentId"]
    assert [c.status for c in t.twin.calls("/shipments")] == [201, 201, 201]
    # The twin's ledger (PartnerService): one shipment for three POSTs with the same key.
    shipments = t.twin._service.shipments.results()
    assert [s.shipmentId for s in shipments] == [retried["shipmentId"]]


def test_ship_without_the_charge_result_is_a_validation_error(make_tasks: TasksFactory) -> None:
    t = make_tasks()

    assert type(t.error_of("Ship", task_event("Ship"))).__name__ == "ValidationError"
    other_order = {"orderId": "ord-2", "chargeId": "ch_1", "amountCents": 1, "currency": "EUR",
                   "idempotencyKey": "k"}  # fmt: skip
    error = t.error_of("Ship", task_event("Ship", charge=other_order))
    assert type(error).__name__ == "ValidationError"
    assert t.twin.total_calls == 0


def test_a_permanently_rejected_shipment_is_a_permanent_error(make_tasks: TasksFactory) -> None:
    t = make_tasks()
    charge = t.run("Charge", task_event("Charge"))
    t.twin.enqueue(FaultDecision.error(400))

    error = t.error_of("Ship", task_event("Ship", charge=charge))

    assert type(error).__name__ == "PermanentUpstreamError"
    assert [c.status for c in t.twin.calls("/shipments")] == [400]


# ---------------------------------------------------------------------------------------------- notify


def test_notify_sends_one_notification_per_payment(make_tasks: TasksFactory) -> None:
    t = make_tasks()
    charge, shipment = t.charge_and_ship()
    event = task_event("Notify", charge=charge, shipment=shipment)

    first = t.run("Notify", event)
    replay = t.run("Notify", {**event, "attempt": 1})

    assert (
        first["notificationId"].startswith("nt_")
        and first["idempotencyKey"] == "PaymentReceived:pay-1:Notify"
    )
    assert replay["notificationId"] == first["notificationId"] and replay["replayed"]
    assert len(t.twin._service.notifications) == 1


def test_notify_fails_loudly_when_the_dependency_is_down(make_tasks: TasksFactory) -> None:
    t = make_tasks()
    charge, shipment = t.charge_and_ship()
    t.twin.set_profile("outage")

    error = t.error_of("Notify", task_event("Notify", charge=charge, shipment=shipment))

    # The ASL retries it, then its Catch records a WARNING for a replay; the order still succeeds.
    assert type(error).__name__ == "TransientUpstreamError"
    out = t.output()
    [failed] = [r for r in log_records(out) if r["message"] == "fulfilment step failed"]
    assert (failed["error"], failed["step"], failed["order_id"]) == (
        "TransientUpstreamError",
        "Notify",
        "ord-1",
    )
    assert [p["step"] for p in metric_points(out, tasks.STEP_FAILED_METRIC)] == ["Notify"]


def test_a_non_critical_fallback_is_never_reported_as_a_sent_notification(make_tasks: TasksFactory) -> None:
    """With DEPENDENCY_CRITICAL=false the client would return the last good body: refused, retried."""
    t = make_tasks(DEPENDENCY_CRITICAL="false")
    charge, shipment = t.charge_and_ship()
    t.run("Notify", task_event("Notify", charge=charge, shipment=shipment))  # caches a last-known-good body
    t.twin.set_profile("outage")

    error = t.error_of("Notify", task_event("Notify", execution="exec-2", charge=charge, shipment=shipment))

    assert type(error).__name__ == "TransientUpstreamError"
    assert "fallback" in str(error)


# ---------------------------------------------------------------------------------------------- contract


class _StubClient:
    def __init__(self, body: Any) -> None:
        self.body = body
        self.policy = type("Policy", (), {"name": "partner"})()

    def post(self, path: str, **kwargs: Any) -> DependencyResponse:
        return DependencyResponse(status=201, body=self.body, attempts=1)


@pytest.mark.parametrize(
    "body",
    [
        {"chargeId": "ch_1", "orderId": "ord-1", "amountCents": 9999, "currency": "EUR"},  # other amount
        {"chargeId": "ch_1", "orderId": "ord-9", "amountCents": 1250, "currency": "EUR"},  # other order
        "<html>ok</html>",
    ],
)
def test_a_2xx_that_does_not_confirm_the_charge_is_unconfirmed(body: Any) -> None:
    partner = Partner(client=_StubClient(body))  # type: ignore[arg-type]

    with pytest.raises(UnconfirmedResultError):
        tasks.charge(partner, tasks.parse_task(task_event("Charge"), "Charge"), remaining_ms=lambda: 30_000)


def test_misconfiguration_fails_at_init_with_the_variable_names(
    make_tasks: TasksFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tasks()
    monkeypatch.delenv("CIRCUIT_BREAKER_TABLE_NAME")
    monkeypatch.setenv("DEPENDENCY_MAX_ATTEMPTS", "lots")

    with pytest.raises(ConfigurationError) as caught:
        import_fresh("lambdas.fulfilment.handler")

    assert "CIRCUIT_BREAKER_TABLE_NAME" in str(caught.value)
    assert "DEPENDENCY_MAX_ATTEMPTS" in str(caught.value)
