"""DependencyClient against the real local partner twin (HTTP on 127.0.0.1) and a moto circuit table."""

from __future__ import annotations

import datetime as dt
import io
import json
import random
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.circuit_breaker import base as powertools_breaker
from aws_lambda_powertools.utilities.circuit_breaker.persistence import base as powertools_persistence
from aws_lambda_powertools.utilities.circuit_breaker.persistence import dynamodb as powertools_dynamodb

from lambdas.contracts import log_fields as lf
from lambdas.contracts.api import IDEMPOTENCY_KEY_HEADER
from lambdas.contracts.circuit import RECORD_FAILURE_COUNT, RECORD_FLEET_FAILURES, RECORD_OPENED_AT
from lambdas.contracts.metrics import (
    CALL_OUTCOME_CONFIGURATION,
    CALL_OUTCOME_PERMANENT,
    CALL_OUTCOME_SUCCESS,
    CALL_OUTCOME_TRANSIENT,
    DIMENSION_OUTCOME,
    METRIC_FALLBACK_USED,
    METRIC_LOGICAL_CALLS,
)
from lambdas.partner_api.faults import FaultDecision, FaultProfile
from lambdas.shared.dependency_client import (
    FLEET_BOOKKEEPING_SKIPPED_MESSAGE,
    BudgetExhaustedError,
    DependencyClient,
    DependencyUnavailableError,
    PermanentUpstreamError,
    TransientUpstreamError,
    UpstreamConfigurationError,
    create_session,
    made_no_call,
)
from localcloud.fault_dependency import FaultDependency
from tests.unit.helpers import (
    BreakerTable,
    ManualClock,
    VirtualClock,
    closed_port,
    log_records,
    make_policy,
    metric_points,
    unique_name,
)

VALID_CHARGE = {"orderId": "ord-1", "amountCents": 1250, "currency": "EUR"}
ClientFactory = Callable[..., DependencyClient]


def budget(ms: int) -> Callable[[], int]:
    return lambda: ms


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """Epoch seconds the test moves, for the breaker (Powertools reads ``datetime.now()`` in whole seconds,
    patched in its three modules) and the client."""
    clock = ManualClock(float(int(time.time())) + 0.25)

    class _Now(dt.datetime):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> dt.datetime:  # type: ignore[override]
            return dt.datetime.fromtimestamp(clock.now, tz)

    shim = types.SimpleNamespace(datetime=_Now)
    for module in (powertools_breaker, powertools_persistence, powertools_dynamodb):
        monkeypatch.setattr(module, "dt", shim)
    return clock


@pytest.fixture
def make_client(
    twin: FaultDependency, breaker_table: BreakerTable, vclock: VirtualClock, wall: ManualClock
) -> Iterator[ClientFactory]:
    """Clients on clocks the test controls: an opened circuit stays open until the test moves ``wall``."""
    sessions: list[requests.Session] = []

    def factory(
        *,
        base_url: str | None = None,
        rng: random.Random | None = None,
        logger: Any = None,
        sleep: Callable[[float], None] | None = None,
        on_transition: Callable[[Any], None] | None = None,
        cache_seconds: float = 0,  # read the shared state every call, like a fleet of fresh environments
        wall_clock: Callable[[], float] | None = None,
        **overrides: Any,
    ) -> DependencyClient:
        session = create_session()
        sessions.append(session)
        policy = make_policy(base_url or twin.base_url, **overrides)
        return DependencyClient(
            policy,
            breaker_table_name=breaker_table.name,
            dynamodb_client=breaker_table.client,
            breaker_cache_seconds=cache_seconds,
            session=session,
            logger=logger,
            sleep=sleep or vclock.sleep,
            clock=vclock.monotonic,
            wall_clock=wall_clock or wall,
            rng=rng or random.Random(3),
            on_transition=on_transition,
        )

    yield factory
    for session in sessions:
        session.close()


def post_charge(client: DependencyClient, ms: int = 10_000, **kwargs: Any) -> Any:
    headers = {IDEMPOTENCY_KEY_HEADER: kwargs.pop("key", "key-1")}
    return client.post(
        "/charges", json=kwargs.pop("json", VALID_CHARGE), headers=headers, remaining_ms=budget(ms)
    )


# ---------------------------------------------------------------------------------------- retries


def test_5xx_is_retried_with_full_jitter_backoff_until_success(
    make_client: ClientFactory, twin: FaultDependency, vclock: VirtualClock
) -> None:
    twin.enqueue(*[FaultDecision.error(503)] * 4)
    client = make_client(max_attempts=6, base_delay_ms=100, max_delay_ms=250, rng=random.Random(7))

    response = post_charge(client)

    assert response.status == 201 and response.body["orderId"] == "ord-1"
    assert response.attempts == 5
    assert twin.total_calls == 5
    # Full jitter: uniform(0, min(cap, base * 2**n)) with ceilings 100, 200, 250 (cap), 250 ms.
    expected_rng = random.Random(7)
    expected = [expected_rng.uniform(0, ceiling) / 1000 for ceiling in (100, 200, 250, 250)]
    assert vclock.sleeps == pytest.approx(expected)
    assert all(s <= 0.250 for s in vclock.sleeps)
    assert len(set(vclock.sleeps)) == len(vclock.sleeps)  # jittered, not a fixed schedule


def test_429_retry_after_delta_seconds_is_honoured(
    make_client: ClientFactory, twin: FaultDependency, vclock: VirtualClock
) -> None:
    twin.enqueue(FaultDecision.throttle(retry_after_seconds=2))
    client = make_client(base_delay_ms=10, max_delay_ms=20)

    response = post_charge(client)

    assert response.status == 201 and response.attempts == 2
    assert vclock.sleeps == [2.0]  # the server's hint, not the (much shorter) jittered backoff


def test_429_retry_after_http_date_is_honoured(
    make_client: ClientFactory, twin: FaultDependency, vclock: VirtualClock
) -> None:
    twin.enqueue(FaultDecision.throttle(retry_after_seconds=3, retry_after_format="http-date"))
    client = make_client(base_delay_ms=10, max_delay_ms=20)

    response = post_charge(client)

    assert response.status == 201 and response.attempts == 2
    assert len(vclock.sleeps) == 1
    # An HTTP-date has 1 s resolution: "now + 3 s" truncated is 2..3 s away (minus scheduling delay).
    assert 1.5 < vclock.sleeps[0] <= 3.0


def test_retry_after_beyond_the_budget_gives_up_at_once(
    make_client: ClientFactory, twin: FaultDependency, vclock: VirtualClock
) -> None:
    twin.enqueue(FaultDecision.throttle(retry_after_seconds=30))
    client = make_client(max_attempts=5)

    with pytest.raises(BudgetExhaustedError) as caught:
        post_charge(client, ms=5_000)

    assert isinstance(caught.value, TransientUpstreamError)
    assert caught.value.status == 429 and caught.value.status_class == "429"
    assert caught.value.retry_after == 30
    assert vclock.sleeps == []
    assert twin.total_calls == 1


def test_4xx_is_not_retried(make_client: ClientFactory, twin: FaultDependency, vclock: VirtualClock) -> None:
    client = make_client(max_attempts=5)

    with pytest.raises(PermanentUpstreamError) as caught:
        post_charge(client, json={"orderId": "ord-1"})  # missing fields -> 400 from the partner

    assert caught.value.status == 400 and caught.value.status_class == "4xx"
    assert caught.value.attempts == 1
    assert twin.total_calls == 1
    assert vclock.sleeps == []


def test_a_slow_response_is_cut_by_the_time_budget(
    twin: FaultDependency, breaker_table: BreakerTable
) -> None:
    twin.set_profile(FaultProfile(latency_ms=3000))
    policy = make_policy(twin.base_url, attempt_timeout_ms=5000, safety_margin_ms=100, connect_timeout_ms=500)
    client = DependencyClient(
        policy,
        breaker_table_name=breaker_table.name,
        dynamodb_client=breaker_table.client,
        session=create_session(),
    )  # real clock and real sleep: this test is about wall time
    remaining_ms = 1500
    deadline = time.monotonic() + remaining_ms / 1000

    started = time.monotonic()
    with pytest.raises(TransientUpstreamError) as caught:
        client.get("/health", remaining_ms=lambda: int((deadline - time.monotonic()) * 1000))
    elapsed = time.monotonic() - started

    assert caught.value.status_class == "timeout"
    # The attempt got (budget - connect timeout: 0.9 s), not the 5 s attempt cap nor the partner's 3 s.
    assert 0.75 < elapsed < 2.5
    # One attempt, not retried: the budget was gone. Counted by the client: on a busy host the twin's
    # handler thread may reach the request only after the client has hung up, and never count it.
    assert caught.value.attempts == 1
    assert twin.total_calls <= 1


def test_connection_refused_is_retried_then_reported_as_transient(
    make_client: ClientFactory, vclock: VirtualClock
) -> None:
    client = make_client(base_url=f"http://127.0.0.1:{closed_port()}", max_attempts=3)

    with pytest.raises(TransientUpstreamError) as caught:
        client.get("/health", remaining_ms=budget(10_000))

    assert caught.value.status_class == "connection"
    assert caught.value.status is None
    assert caught.value.attempts == 3
    assert len(vclock.sleeps) == 2


def test_a_budget_too_small_for_one_attempt_fails_without_calling_or_tripping(
    make_client: ClientFactory, twin: FaultDependency, breaker_table: BreakerTable
) -> None:
    client = make_client(breaker_failure_threshold=1, safety_margin_ms=100, connect_timeout_ms=200)

    with pytest.raises(BudgetExhaustedError) as caught:
        client.get("/health", remaining_ms=budget(300))  # 300 - 100 margin - 200 connect < 50 ms read

    assert caught.value.attempts == 0
    assert twin.total_calls == 0
    assert breaker_table.state(client.policy.name) in (None, "CLOSED")
    assert client.get("/health", remaining_ms=budget(5_000)).status == 200


def test_the_adapter_never_retries_on_its_own() -> None:
    session = create_session()
    retries = session.get_adapter("http://127.0.0.1").max_retries
    assert (retries.total, retries.connect, retries.read, retries.status) == (0, 0, False, 0)


# ---------------------------------------------------------------------------------------- circuit breaker


def test_breaker_opens_after_threshold_then_half_opens_and_closes(
    make_client: ClientFactory, twin: FaultDependency, breaker_table: BreakerTable, wall: ManualClock
) -> None:
    client = make_client(
        max_attempts=2,
        breaker_failure_threshold=2,
        breaker_recovery_seconds=1,
        breaker_success_threshold=2,
    )
    name = client.policy.name
    twin.set_profile("outage")

    for _ in range(2):  # two logical calls = two breaker failures (not three: one outcome per call)
        with pytest.raises(TransientUpstreamError):
            client.get("/health", remaining_ms=budget(5_000))
    assert twin.total_calls == 3  # 2 attempts, then 1: one fewer after a failed call
    assert breaker_table.state(name) == "OPEN"

    wall.now += 0.5
    with pytest.raises(DependencyUnavailableError) as caught:
        client.get("/health", remaining_ms=budget(5_000))
    assert twin.total_calls == 3  # rejected without calling the dependency
    # Opened at the whole second before (Powertools' resolution): 1 s recovery, 0.75 s of it gone.
    assert caught.value.retry_in_seconds == pytest.approx(0.25)

    twin.set_profile("healthy")
    wall.now += 0.5  # past the recovery window

    assert client.get("/health", remaining_ms=budget(5_000)).status == 200  # the half-open probe
    assert breaker_table.state(name) == "HALF_OPEN"
    assert client.get("/health", remaining_ms=budget(5_000)).status == 200  # second success closes it
    assert breaker_table.state(name) == "CLOSED"
    assert twin.total_calls == 5


def test_4xx_does_not_count_toward_the_breaker(
    make_client: ClientFactory, twin: FaultDependency, breaker_table: BreakerTable
) -> None:
    client = make_client(breaker_failure_threshold=2)

    for _ in range(4):
        with pytest.raises(PermanentUpstreamError):
            post_charge(client, json={"bad": "body"})

    assert twin.total_calls == 4
    assert breaker_table.state(client.policy.name) in (None, "CLOSED")
    assert post_charge(client).status == 201


def test_circuit_transitions_are_logged_and_counted(
    make_client: ClientFactory, twin: FaultDependency, capsys: pytest.CaptureFixture[str]
) -> None:
    stream = io.StringIO()
    client = make_client(
        max_attempts=1, breaker_failure_threshold=1, logger=Logger(service=unique_name("log"), stream=stream)
    )
    twin.set_profile("outage")

    with pytest.raises(TransientUpstreamError):
        client.get("/health", remaining_ms=budget(5_000))

    transitions = [r for r in log_records(stream.getvalue()) if r["message"] == lf.CIRCUIT_TRANSITION_MESSAGE]
    assert [(r[lf.FROM_STATE], r[lf.TO_STATE]) for r in transitions] == [("CLOSED", "OPEN")]
    points = metric_points(capsys.readouterr().out, "CircuitTransition")
    assert [(p["dependency"], p["to_state"]) for p in points] == [(client.policy.name, "OPEN")]
    assert all({"dependency", "to_state"} <= p["_dimensions"] for p in points)


# ---------------------------------------------------------------------------------------- fallback


def test_non_critical_dependency_falls_back_to_last_known_good_then_default(
    make_client: ClientFactory, twin: FaultDependency, capsys: pytest.CaptureFixture[str]
) -> None:
    client = make_client(critical=False, max_attempts=2)
    fresh = client.get("/health", remaining_ms=budget(5_000))
    assert fresh.body == {"status": "ok"} and not fresh.from_fallback

    twin.set_profile("outage")
    cached = client.get("/health", remaining_ms=budget(5_000))
    default = client.get("/health?detail=1", remaining_ms=budget(5_000), fallback={"status": "unknown"})

    assert cached.from_fallback and cached.fallback_source == "last_known_good"
    assert cached.body == {"status": "ok"}
    assert default.from_fallback and default.fallback_source == "default"
    assert default.body == {"status": "unknown"}
    with pytest.raises(TransientUpstreamError):  # nothing cached and no default: the error surfaces
        client.get("/never-succeeded", remaining_ms=budget(5_000))
    assert len(metric_points(capsys.readouterr().out, "FallbackUsed")) == 2


def test_fallback_count_has_the_dimensions_the_fallback_alarm_watches(
    make_client: ClientFactory,
    twin: FaultDependency,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # stacks/monitoring.py alarms on FallbackUsed with exactly {dependency, service} (set on every function).
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "resilient-test")
    client = make_client(critical=False, max_attempts=1)
    twin.set_profile("outage")
    client.get("/health", remaining_ms=budget(5_000), fallback={"status": "unknown"})

    (point,) = metric_points(capsys.readouterr().out, METRIC_FALLBACK_USED)
    assert point["_dimensions"] == {lf.DEPENDENCY, "service"}
    assert (point[lf.DEPENDENCY], point["service"]) == (client.policy.name, "resilient-test")


def test_non_critical_dependency_falls_back_while_the_circuit_is_open(
    make_client: ClientFactory, twin: FaultDependency
) -> None:
    client = make_client(critical=False, max_attempts=1, breaker_failure_threshold=1)
    client.get("/health", remaining_ms=budget(5_000))
    twin.set_profile("outage")
    client.get("/health", remaining_ms=budget(5_000))  # fails, falls back, opens the circuit
    calls = twin.total_calls

    response = client.get("/health", remaining_ms=budget(5_000))

    assert response.from_fallback and response.body == {"status": "ok"}
    assert twin.total_calls == calls


def test_critical_dependency_raises_instead_of_falling_back(
    make_client: ClientFactory, twin: FaultDependency
) -> None:
    client = make_client(critical=True, max_attempts=1)
    client.get("/health", remaining_ms=budget(5_000))
    twin.set_profile("outage")

    with pytest.raises(TransientUpstreamError):
        client.get("/health", remaining_ms=budget(5_000), fallback={"status": "unknown"})


# ---------------------------------------------------------------------------------------- telemetry


def test_upstream_errors_are_emf_metrics_with_dependency_and_status_class(
    make_client: ClientFactory, twin: FaultDependency, capsys: pytest.CaptureFixture[str]
) -> None:
    twin.enqueue(FaultDecision.error(503), FaultDecision.throttle(retry_after_seconds=0))
    client = make_client(max_attempts=3)

    post_charge(client)

    out = capsys.readouterr().out
    errors = metric_points(out, "UpstreamErrors")
    assert [(p["dependency"], p["status_class"], p["UpstreamErrors"]) for p in errors] == [
        (client.policy.name, "5xx", [1.0]),
        (client.policy.name, "429", [1.0]),
    ]
    assert all({"dependency", "status_class"} <= p["_dimensions"] for p in errors)
    assert all(p["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ResilientServerlessTest" for p in errors)
    assert len(metric_points(out, "UpstreamCalls")) == 3
    latencies = metric_points(out, "UpstreamLatency")
    assert len(latencies) == 3 and all(p["UpstreamLatency"][0] >= 0 for p in latencies)


def test_connection_errors_are_counted_with_their_own_status_class(
    make_client: ClientFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    client = make_client(base_url=f"http://127.0.0.1:{closed_port()}", max_attempts=2)
    with pytest.raises(TransientUpstreamError):
        client.get("/health", remaining_ms=budget(5_000))
    errors = metric_points(capsys.readouterr().out, "UpstreamErrors")
    assert [p["status_class"] for p in errors] == ["connection", "connection"]


def test_one_structured_log_line_per_attempt_with_the_route_template(
    make_client: ClientFactory, twin: FaultDependency
) -> None:
    stream = io.StringIO()
    client = make_client(logger=Logger(service=unique_name("log"), stream=stream))
    twin.enqueue(FaultDecision.error(502))

    client.request(
        "POST",
        "/charges",
        route="/charges",
        json=VALID_CHARGE,
        headers={IDEMPOTENCY_KEY_HEADER: "k"},
        remaining_ms=budget(5_000),
    )
    with pytest.raises(UpstreamConfigurationError):  # 404: a route of ours the partner does not know
        client.get("/orders/ord-123/charges", route="/orders/{orderId}/charges", remaining_ms=budget(5_000))

    lines = [r for r in log_records(stream.getvalue()) if r["message"] == lf.UPSTREAM_CALL_MESSAGE]
    summary = [
        (r[lf.METHOD], r[lf.ROUTE], r[lf.STATUS], r[lf.STATUS_CLASS], r[lf.ATTEMPT], r[lf.OUTCOME])
        for r in lines
    ]
    assert summary == [
        ("POST", "/charges", 502, "5xx", 1, lf.OUTCOME_RETRY),
        ("POST", "/charges", 201, "2xx", 2, lf.OUTCOME_SUCCESS),
        ("GET", "/orders/{orderId}/charges", 404, "4xx", 1, lf.OUTCOME_CONFIGURATION),
    ]
    for record in lines:
        assert record[lf.DEPENDENCY] == client.policy.name
        assert record[lf.CIRCUIT_STATE] == "CLOSED"
        assert isinstance(record[lf.LATENCY_MS], int | float) and record[lf.LATENCY_MS] >= 0
        assert "ord-123" not in json.dumps(record)  # the concrete path never reaches the log
    assert set(lf.ALL_FIELDS) >= {lf.DEPENDENCY, lf.METHOD, lf.ROUTE, lf.STATUS, lf.ATTEMPT, lf.OUTCOME}


def test_client_requires_a_breaker_store(twin: FaultDependency) -> None:
    with pytest.raises(ValueError, match="breaker_store or breaker_table_name"):
        DependencyClient(make_policy(twin.base_url))


def test_a_client_whose_circuit_another_layer_owns_has_no_breaker(
    twin: FaultDependency, capsys: pytest.CaptureFixture[str]
) -> None:
    # The circuit controller's probe: no circuit table, no breaker, no data point for the failure-rate
    # alarm; the budget, classification, per-attempt log line and metrics are the client's own.
    stream = io.StringIO()
    client = DependencyClient(
        make_policy(twin.base_url, max_attempts=1, breaker_failure_threshold=1),
        external_circuit="controller:OPEN",
        logger=Logger(service=unique_name("log"), stream=stream),
        session=create_session(),
    )
    twin.set_profile("outage")
    for _ in range(2):  # a breaker with threshold 1 would have rejected the second call
        with pytest.raises(TransientUpstreamError):
            post_charge(client)
    twin.set_profile("healthy")

    assert post_charge(client).status == 201
    assert twin.total_calls == 3
    lines = [r for r in log_records(stream.getvalue()) if r["message"] == lf.UPSTREAM_CALL_MESSAGE]
    assert [r[lf.CIRCUIT_STATE] for r in lines] == ["controller:OPEN"] * 3
    out = capsys.readouterr().out
    assert len(metric_points(out, "UpstreamCalls")) == 3
    assert metric_points(out, METRIC_LOGICAL_CALLS) == []
    with pytest.raises(ValueError, match="no breaker"):
        client.circuit_state()
    with pytest.raises(ValueError, match="not both"):
        DependencyClient(make_policy(twin.base_url), breaker_table_name="t", external_circuit="controller")


# ---------------------------------------------------------------------------------------- classification


@pytest.mark.parametrize("status", [400, 422])
def test_only_what_can_never_succeed_is_permanent(
    make_client: ClientFactory, twin: FaultDependency, status: int
) -> None:
    twin.enqueue(FaultDecision.error(status))
    with pytest.raises(PermanentUpstreamError) as caught:
        post_charge(make_client(max_attempts=5))
    assert caught.value.status == status and twin.total_calls == 1


def test_an_explicit_partner_code_is_permanent_whatever_the_status(
    make_client: ClientFactory, twin: FaultDependency
) -> None:
    client = make_client(max_attempts=5)
    assert post_charge(client, key="k-conflict").status == 201
    # The same key with another body: the partner answers 409 {"error": "idempotency_conflict"}.
    with pytest.raises(PermanentUpstreamError) as caught:
        post_charge(client, key="k-conflict", json={**VALID_CHARGE, "amountCents": 9})
    assert caught.value.status == 409 and twin.total_calls == 2


@pytest.mark.parametrize("status", [408, 409, 423, 425, 301, 307])
def test_not_now_answers_are_retried(
    make_client: ClientFactory, twin: FaultDependency, vclock: VirtualClock, status: int
) -> None:
    twin.enqueue(FaultDecision.error(status))
    response = post_charge(make_client(max_attempts=3))
    assert response.status == 201 and response.attempts == 2 and len(vclock.sleeps) == 1


@pytest.mark.parametrize("status", [401, 403, 404, 405])
def test_a_refused_key_or_route_is_a_configuration_error_counted_by_the_breaker(
    make_client: ClientFactory, twin: FaultDependency, breaker_table: BreakerTable, status: int
) -> None:
    client = make_client(max_attempts=5, breaker_failure_threshold=2)
    twin.enqueue(*[FaultDecision.error(status)] * 2)

    for _ in range(2):
        with pytest.raises(UpstreamConfigurationError) as caught:
            post_charge(client)
        assert caught.value.status == status

    assert twin.total_calls == 2  # never retried (no credentials to re-read here)
    assert breaker_table.state(client.policy.name) == "OPEN"  # a misconfigured fleet pauses


class _Credentials:
    """A key the test rotates: ``refresh`` reads ``next_key`` (what a re-read of the secret would find)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.next_key = key
        self.refreshes = 0

    def headers(self) -> dict[str, str]:
        return {"x-api-key": self.key}

    def refresh(self) -> bool:
        self.refreshes += 1
        changed = self.next_key != self.key
        self.key = self.next_key
        return changed


def test_a_401_re_reads_the_key_once_and_retries_with_the_new_one(
    twin: FaultDependency, breaker_table: BreakerTable, vclock: VirtualClock
) -> None:
    credentials = _Credentials("old-key")
    credentials.next_key = "new-key"
    with FaultDependency(api_key="new-key", seed=1) as partner:
        client = DependencyClient(
            make_policy(partner.base_url, max_attempts=1),
            breaker_table_name=breaker_table.name,
            dynamodb_client=breaker_table.client,
            session=create_session(),
            sleep=vclock.sleep,
            clock=vclock.monotonic,
            credentials=credentials,
        )
        response = post_charge(client)
        statuses = [c.status for c in partner.calls("/charges")]

    assert response.status == 201
    assert statuses == [401, 201]  # one more attempt even with max_attempts=1: the key changed
    assert credentials.refreshes == 1 and vclock.sleeps == []  # no backoff: not a dependency fault


def test_a_401_with_an_unchanged_key_fails_after_one_re_read(
    breaker_table: BreakerTable, vclock: VirtualClock
) -> None:
    credentials = _Credentials("wrong-key")
    with FaultDependency(api_key="right-key", seed=1) as partner:
        client = DependencyClient(
            make_policy(partner.base_url, max_attempts=5),
            breaker_table_name=breaker_table.name,
            dynamodb_client=breaker_table.client,
            session=create_session(),
            sleep=vclock.sleep,
            clock=vclock.monotonic,
            credentials=credentials,
        )
        with pytest.raises(UpstreamConfigurationError):
            post_charge(client)
        calls = partner.total_calls

    assert calls == 1 and credentials.refreshes == 1


# ---------------------------------------------------------------------------------------- local shortfalls


def test_a_budget_used_up_before_the_first_attempt_does_not_count_toward_the_breaker(
    make_client: ClientFactory, twin: FaultDependency, breaker_table: BreakerTable, vclock: VirtualClock
) -> None:
    client = make_client(breaker_failure_threshold=1)
    real_read = client._store.get_state

    def slow_read(name: str) -> Any:  # the circuit table took the whole budget to answer
        vclock.offset += 10.0
        return real_read(name)

    client._store.get_state = slow_read  # type: ignore[method-assign]

    with pytest.raises(BudgetExhaustedError) as caught:
        post_charge(client, ms=5_000)

    assert caught.value.attempts == 0 and twin.total_calls == 0
    assert breaker_table.state(client.policy.name) in (None, "CLOSED")


def test_a_non_critical_call_that_ran_out_of_budget_mid_way_does_not_fall_back(
    make_client: ClientFactory, twin: FaultDependency
) -> None:
    client = make_client(critical=False, max_attempts=3)
    assert not client.get("/health", remaining_ms=budget(5_000)).from_fallback  # a last-known-good exists
    twin.enqueue(FaultDecision.throttle(retry_after_seconds=30))  # the wait cannot fit the budget

    with pytest.raises(BudgetExhaustedError) as caught:
        client.get("/health", remaining_ms=budget(5_000), fallback={"status": "unknown"})

    assert caught.value.attempts == 1  # it started: a fallback now would report undone work as done


# ---------------------------------------------------------------------------------------- logical calls


def test_one_logical_call_data_point_per_call_after_retries(
    make_client: ClientFactory,
    twin: FaultDependency,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # stacks/monitoring.py reads METRIC_LOGICAL_CALLS with exactly {dependency, outcome, service}.
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "resilient-test")
    client = make_client(max_attempts=2)
    twin.enqueue(FaultDecision.throttle(retry_after_seconds=0))  # retried, then fine: one success
    post_charge(client)
    twin.enqueue(FaultDecision.error(503), FaultDecision.error(503))
    with pytest.raises(TransientUpstreamError):
        post_charge(client)
    twin.enqueue(FaultDecision.error(422))
    with pytest.raises(PermanentUpstreamError):
        post_charge(client)
    twin.enqueue(FaultDecision.error(404))
    with pytest.raises(UpstreamConfigurationError):
        post_charge(client)
    with pytest.raises(BudgetExhaustedError):  # never reached the dependency: no data point
        post_charge(client, ms=100)

    points = metric_points(capsys.readouterr().out, METRIC_LOGICAL_CALLS)
    assert [p[DIMENSION_OUTCOME] for p in points] == [
        CALL_OUTCOME_SUCCESS,
        CALL_OUTCOME_TRANSIENT,
        CALL_OUTCOME_PERMANENT,
        CALL_OUTCOME_CONFIGURATION,
    ]
    assert all(p["_dimensions"] == {lf.DEPENDENCY, DIMENSION_OUTCOME, "service"} for p in points)
    assert all(p[lf.DEPENDENCY] == client.policy.name and p[METRIC_LOGICAL_CALLS] == [1.0] for p in points)


def test_each_consecutive_failed_call_gets_one_attempt_fewer_until_a_success(
    make_client: ClientFactory, twin: FaultDependency
) -> None:
    client = make_client(max_attempts=3, breaker_failure_threshold=10)
    twin.set_profile("outage")

    attempts = []
    for _ in range(4):
        before = twin.total_calls
        with pytest.raises(TransientUpstreamError):
            post_charge(client)
        attempts.append(twin.total_calls - before)

    # 3 + 2 + 1 + 1 = 7 calls at a dead dependency instead of 12 before its breaker trips.
    assert attempts == [3, 2, 1, 1]
    twin.set_profile("healthy")
    assert post_charge(client).attempts == 1
    assert client.attempts_allowed == 3  # one success restores every attempt
    twin.enqueue(FaultDecision.error(503), FaultDecision.error(503))
    assert post_charge(client).attempts == 3


def test_an_answer_that_proves_the_dependency_up_restores_the_attempts(
    make_client: ClientFactory, twin: FaultDependency
) -> None:
    client = make_client(max_attempts=3)
    twin.enqueue(*[FaultDecision.error(503)] * 3)
    with pytest.raises(TransientUpstreamError):
        post_charge(client)
    assert client.attempts_allowed == 2
    twin.enqueue(FaultDecision.error(422))
    with pytest.raises(PermanentUpstreamError):
        post_charge(client)
    assert client.attempts_allowed == 3


# ---------------------------------------------------------------------------------------- the fleet's circuit
# Other environments are played by writes to the shared circuit record; the client is one environment.
# The fleet's bookkeeping runs only when the time left fits it, by the table's measured (real) request
# times: calls here get a budget no busy machine's table requests approach, so the bookkeeping always fits.
ROOMY_MS = 120_000


def test_the_failure_that_brings_the_fleets_streak_to_the_threshold_opens_the_circuit_for_everyone(
    make_client: ClientFactory, twin: FaultDependency, breaker_table: BreakerTable
) -> None:
    client = make_client(max_attempts=1, breaker_failure_threshold=5)
    name = client.policy.name
    breaker_table.put(
        name, "CLOSED", {RECORD_FLEET_FAILURES: 4}
    )  # four other environments failed a call each
    twin.set_profile("outage")

    with pytest.raises(TransientUpstreamError):
        client.get("/health", remaining_ms=budget(ROOMY_MS))  # this environment's first failure

    item = breaker_table.item(name)
    assert item is not None
    assert (item["state"]["S"], item["failure_count"]["N"]) == ("OPEN", "5")
    assert RECORD_FLEET_FAILURES not in item  # the opening wiped the streak
    with pytest.raises(DependencyUnavailableError):
        client.get("/health", remaining_ms=budget(ROOMY_MS))
    assert twin.total_calls == 1


def test_a_failed_call_without_time_left_for_the_fleets_bookkeeping_skips_it(
    make_client: ClientFactory, twin: FaultDependency, breaker_table: BreakerTable
) -> None:
    stream = io.StringIO()
    client = make_client(
        max_attempts=1,
        breaker_failure_threshold=5,
        logger=Logger(service=unique_name("log"), stream=stream),
    )
    name = client.policy.name
    breaker_table.put(name, "CLOSED", {RECORD_FLEET_FAILURES: 4})
    twin.set_profile("outage")
    # The call starts with time to spare; when it ends, the invocation is inside the caller's margin.
    times_left = iter([5_000])

    def remaining_ms() -> int:
        return next(times_left, client.policy.safety_margin_ms - 1)

    with pytest.raises(TransientUpstreamError):
        client.get("/health", remaining_ms=remaining_ms)

    # No write after the budget: the streak stays where the fleet left it, the circuit CLOSED.
    assert breaker_table.fleet_failures(name) == 4
    assert breaker_table.item(name)["state"]["S"] == "CLOSED"  # type: ignore[index]
    skipped = [r for r in log_records(stream.getvalue()) if r["message"] == FLEET_BOOKKEEPING_SKIPPED_MESSAGE]
    assert len(skipped) == 1 and skipped[0]["left_ms"] == -1
    # The next failed call that has the time adds its failure and opens the circuit for everyone.
    with pytest.raises(TransientUpstreamError):
        client.get("/health", remaining_ms=budget(ROOMY_MS))
    assert breaker_table.item(name)["state"]["S"] == "OPEN"  # type: ignore[index]


def test_a_fleet_trip_is_announced_once_like_a_powertools_one(
    make_client: ClientFactory, twin: FaultDependency, breaker_table: BreakerTable
) -> None:
    transitions: list[Any] = []
    client = make_client(max_attempts=1, breaker_failure_threshold=2, on_transition=transitions.append)
    name = client.policy.name
    breaker_table.put(name, "CLOSED", {RECORD_FLEET_FAILURES: 1})
    twin.set_profile("outage")

    with pytest.raises(TransientUpstreamError):
        client.get("/health", remaining_ms=budget(ROOMY_MS))
    with pytest.raises(DependencyUnavailableError):
        client.get("/health", remaining_ms=budget(ROOMY_MS))

    assert [(t.from_state, t.to_state) for t in transitions] == [("CLOSED", "OPEN")]
    item = breaker_table.item(name)
    assert item is not None and transitions[0].opened_at == int(item["opened_at"]["N"])


def test_a_call_gets_fewer_attempts_while_the_fleet_has_a_streak(
    make_client: ClientFactory, twin: FaultDependency, breaker_table: BreakerTable
) -> None:
    client = make_client(max_attempts=3, breaker_failure_threshold=10)
    breaker_table.put(client.policy.name, "CLOSED", {RECORD_FLEET_FAILURES: 2})
    twin.set_profile("outage")

    with pytest.raises(TransientUpstreamError) as caught:
        client.get("/health", remaining_ms=budget(ROOMY_MS))

    # One fewer while the fleet has a streak, whatever its length (this environment had failed nothing).
    assert caught.value.attempts == twin.total_calls == 2
    assert breaker_table.fleet_failures(client.policy.name) == 3
    # Its own streak now lowers them further, as before: 3 - 1.
    assert client.attempts_allowed == 2
    with pytest.raises(TransientUpstreamError) as caught:
        client.get("/health", remaining_ms=budget(ROOMY_MS))
    assert caught.value.attempts == 2 and client.attempts_allowed == 1


def test_a_success_ends_the_fleets_streak_and_restores_every_attempt(
    make_client: ClientFactory, twin: FaultDependency, breaker_table: BreakerTable
) -> None:
    client = make_client(max_attempts=3, breaker_failure_threshold=10)
    name = client.policy.name
    breaker_table.put(name, "CLOSED", {RECORD_FLEET_FAILURES: 2})

    assert client.get("/health", remaining_ms=budget(ROOMY_MS)).status == 200
    assert breaker_table.fleet_failures(name) is None
    assert client.attempts_allowed == 3


def test_a_call_stops_retrying_once_another_environment_opened_the_circuit(
    make_client: ClientFactory,
    twin: FaultDependency,
    breaker_table: BreakerTable,
    vclock: VirtualClock,
    wall: ManualClock,
) -> None:
    transitions: list[Any] = []
    name = unique_name("partner")

    def sleep_while_the_fleet_opens(seconds: float) -> None:
        vclock.sleep(seconds)
        # On the clients' wall clock: time.time() could be in the next second (retry_after 30.75).
        breaker_table.put(name, "OPEN", {RECORD_OPENED_AT: int(wall.now), RECORD_FAILURE_COUNT: 5})

    client = make_client(
        name=name,
        max_attempts=3,
        breaker_failure_threshold=1,
        cache_seconds=60,  # the cached CLOSED would let it retry: only a fresh read stops it
        sleep=sleep_while_the_fleet_opens,
        on_transition=transitions.append,
    )
    twin.set_profile("outage")

    with pytest.raises(TransientUpstreamError) as caught:
        client.get("/health", remaining_ms=budget(ROOMY_MS))

    # It reached the dependency once: a transient failure (an open circuit's error would say no call was made).
    assert not isinstance(caught.value, DependencyUnavailableError) and not made_no_call(caught.value)
    assert twin.total_calls == 1 and caught.value.attempts == 1
    assert caught.value.retry_after is not None and 25 <= caught.value.retry_after <= 30  # until the probe
    assert transitions == []  # the circuit was already open: this failure neither counts nor trips it again
    assert breaker_table.state(name) == "OPEN"


def test_a_call_stops_retrying_when_the_fleets_streak_grew_past_its_attempts(
    make_client: ClientFactory, twin: FaultDependency, breaker_table: BreakerTable, vclock: VirtualClock
) -> None:
    name = unique_name("partner")

    def sleep_while_others_fail(seconds: float) -> None:
        vclock.sleep(seconds)
        breaker_table.put(name, "CLOSED", {RECORD_FLEET_FAILURES: 2})  # two calls elsewhere failed meanwhile

    client = make_client(
        name=name,
        max_attempts=3,
        breaker_failure_threshold=10,
        cache_seconds=60,
        sleep=sleep_while_others_fail,
    )
    twin.set_profile("outage")

    with pytest.raises(TransientUpstreamError) as caught:
        client.get("/health", remaining_ms=budget(ROOMY_MS))

    # Two calls failed elsewhere while it waited: a call now gets one attempt fewer, so it stops at 2 of 3.
    assert twin.total_calls == caught.value.attempts == 2
    assert breaker_table.fleet_failures(name) == 3


def test_a_failed_probe_does_not_add_to_the_fleets_streak(
    make_client: ClientFactory, twin: FaultDependency, breaker_table: BreakerTable
) -> None:
    client = make_client(max_attempts=1, breaker_recovery_seconds=1)
    name = client.policy.name
    breaker_table.put(name, "OPEN", {RECORD_OPENED_AT: int(time.time()) - 5, RECORD_FAILURE_COUNT: 5})
    twin.set_profile("outage")

    with pytest.raises(TransientUpstreamError):
        client.get("/health", remaining_ms=budget(ROOMY_MS))  # this environment won the probe, which failed

    assert breaker_table.state(name) == "OPEN"
    assert breaker_table.fleet_failures(name) is None
