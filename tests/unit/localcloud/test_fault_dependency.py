"""The local partner twin: lifecycle, scenarios, and what it records."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from lambdas.contracts.api import IDEMPOTENCY_KEY_HEADER
from lambdas.partner_api.faults import FaultDecision, FaultProfile, preset
from localcloud.fault_dependency import ABANDONED_STATUS, FaultDependency, Phase, scenario
from tests.waiting import wait_until

CHARGE = {"orderId": "ord-1", "amountCents": 1250, "currency": "EUR"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


def charge(
    http: requests.Session, twin: FaultDependency, key: str, order_id: str = "ord-1"
) -> requests.Response:
    body = {**CHARGE, "orderId": order_id}
    return http.post(f"{twin.base_url}/charges", json=body, headers={IDEMPOTENCY_KEY_HEADER: key}, timeout=5)


def test_start_stop_releases_the_port(session: requests.Session) -> None:
    twin = FaultDependency().start()
    port = twin.port
    assert port > 0
    assert session.get(f"{twin.base_url}/health", timeout=5).json() == {"status": "ok"}
    twin.stop()

    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    with pytest.raises(requests.ConnectionError):  # the kept-alive connection was closed as well
        session.get(f"http://127.0.0.1:{port}/health", timeout=1)
    twin.stop()  # idempotent

    with FaultDependency(port=port) as again:  # the port is free for the next server
        assert again.port == port
        assert requests.get(f"{again.base_url}/health", timeout=5).status_code == 200


def test_context_manager_and_contract(session: requests.Session) -> None:
    with FaultDependency(api_key="k") as twin:
        denied = charge(session, twin, "idem-1")
        allowed = session.post(
            f"{twin.base_url}/charges",
            json=CHARGE,
            headers={IDEMPOTENCY_KEY_HEADER: "i", "x-api-key": "k"},
            timeout=5,
        )
        assert denied.status_code == 401
        assert allowed.status_code == 201 and allowed.json()["orderId"] == "ord-1"
        assert session.get(f"{twin.base_url}/nope", timeout=5).status_code == 404


def test_scenario_phases_follow_the_clock(session: requests.Session) -> None:
    clock = FakeClock()
    phases = [
        (0, preset("healthy"), "calm"),
        (10, preset("outage"), "storm"),
        (20, preset("healthy"), "after"),
    ]
    with FaultDependency(phases, clock=clock) as twin:
        statuses = []
        for step in (0, 5, 5, 5, 5):  # t = 0, 5, 10, 15, 20
            clock.advance(step)
            statuses.append(session.get(f"{twin.base_url}/health", timeout=5).status_code)

        assert statuses == [200, 200, 503, 503, 200]
        assert twin.calls_per_phase() == {"calm": 2, "storm": 2, "after": 1}
        assert twin.total_calls == 5
        assert [status for _, status, _ in twin.timeline()] == statuses
        assert [t for t, _, _ in twin.timeline()] == [0, 5, 10, 15, 20]


def test_named_scenarios_and_set_profile(session: requests.Session) -> None:
    clock = FakeClock()
    slow = scenario("slow", after_s=30)
    assert [(p.start_s, p.profile.latency_ms) for p in slow] == [(0.0, 200), (30.0, 8000)]
    with FaultDependency(scenario("outage"), clock=clock) as twin:
        assert session.get(f"{twin.base_url}/health", timeout=5).status_code == 503
        clock.advance(1)
        twin.set_profile("healthy")
        assert session.get(f"{twin.base_url}/health", timeout=5).status_code == 200
        twin.set_profile(FaultProfile(throttle_rate=1.0, retry_after_seconds=7), label="throttled")
        throttled = session.get(f"{twin.base_url}/health", timeout=5)
        assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "7"
        assert twin.calls_per_phase() == {"outage": 1, "healthy": 1, "throttled": 1}
        assert twin.current_phase().label == "throttled"


def test_enqueued_decisions_come_first_then_the_profile(session: requests.Session) -> None:
    with FaultDependency() as twin:
        twin.enqueue(FaultDecision.error(500), FaultDecision.throttle(2), FaultDecision.error(502))
        statuses = [session.get(f"{twin.base_url}/health", timeout=5).status_code for _ in range(4)]
        assert statuses == [500, 429, 502, 200]


def test_peak_concurrency_is_recorded() -> None:
    # Long enough that all six requests overlap even on a loaded machine.
    with FaultDependency(scenario=[Phase(0, FaultProfile(latency_ms=800), "slow")]) as twin:

        def call(_: int) -> int:
            return requests.get(f"{twin.base_url}/health", timeout=5).status_code

        with ThreadPoolExecutor(max_workers=6) as pool:
            statuses = list(pool.map(call, range(6)))

        assert statuses == [200] * 6
        assert twin.peak_in_flight == 6
        assert twin.in_flight == 0
        assert all(latency >= 800 for _, _, latency in twin.timeline())


def test_duplicate_side_effects_are_distinct_charges_for_one_order(session: requests.Session) -> None:
    with FaultDependency() as twin:
        charge(session, twin, "idem-1")
        charge(session, twin, "idem-1")  # a replay: same charge, no new side effect
        charge(session, twin, "idem-2", order_id="ord-2")
        assert twin.duplicate_charges() == {}

        charge(session, twin, "idem-3")  # a second key for ord-1: a second real charge
        assert twin.charges_by_order() == {"ord-1": 2, "ord-2": 1}
        assert twin.duplicate_charges() == {"ord-1": 2}
        assert [c.idempotency_key for c in twin.calls("/charges")] == ["idem-1", "idem-1", "idem-2", "idem-3"]
        assert [c.new_charge for c in twin.calls("/charges")] == [True, False, True, True]


def test_a_charge_counts_even_when_the_client_gave_up(session: requests.Session) -> None:
    with FaultDependency(scenario=[Phase(0, FaultProfile(latency_ms=400), "slow")]) as twin:
        with pytest.raises(requests.exceptions.ReadTimeout):
            session.post(
                f"{twin.base_url}/charges",
                json=CHARGE,
                headers={IDEMPOTENCY_KEY_HEADER: "i"},
                timeout=(1, 0.1),
            )
        wait_until(lambda: twin.in_flight == 0, what="the abandoned request served")
        assert twin.charges_by_order() == {"ord-1": 1}


def test_stop_does_not_wait_for_slow_responses() -> None:
    twin = FaultDependency(scenario=[Phase(0, FaultProfile(latency_ms=10_000), "stuck")]).start()
    errors: list[Exception] = []

    def call() -> None:
        try:
            requests.get(f"{twin.base_url}/health", timeout=20)
        except requests.RequestException as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    wait_until(lambda: twin.in_flight == 1, what="the request reached the twin")

    started = time.monotonic()
    twin.stop()
    thread.join(timeout=5)

    assert time.monotonic() - started < 5.0  # not the 10 s the response would take
    assert not thread.is_alive()
    assert len(errors) == 1  # the connection was closed without an answer
    assert [status for _, status, _ in twin.timeline()] == [ABANDONED_STATUS]


def test_reset_stats(session: requests.Session) -> None:
    with FaultDependency() as twin:
        charge(session, twin, "a")
        twin.reset_stats()
        assert (twin.total_calls, twin.charges_by_order(), twin.timeline()) == (0, {}, [])
        assert json.loads(session.get(f"{twin.base_url}/health", timeout=5).text) == {"status": "ok"}
        assert twin.total_calls == 1


def test_a_failed_call_is_recorded_with_its_order_but_charges_nothing(session: requests.Session) -> None:
    """Calls per order count the failed ones too (the benchmark's most calls for one order)."""
    with FaultDependency() as twin:
        twin.set_profile("outage")
        assert charge(session, twin, "k-1", "ord-9").status_code == 503
        twin.set_profile("healthy")
        assert charge(session, twin, "k-1", "ord-9").status_code == 201
        assert [(c.order_id, c.status, c.new_charge) for c in twin.calls()] == [
            ("ord-9", 503, False),
            ("ord-9", 201, True),
        ]
        assert twin.charges_by_order() == {"ord-9": 1}
