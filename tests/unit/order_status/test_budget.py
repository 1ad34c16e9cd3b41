"""lambdas/order_status/budget.py: timeouts and retries that fit the time left."""

from __future__ import annotations

import pytest

from lambdas.order_status.budget import (
    MIN_ATTEMPT_MS,
    Budget,
    BudgetExhaustedError,
    ClientPool,
    backoff_allowance_ms,
    timeouts_for,
)


def test_the_budget_is_the_smaller_of_the_setting_and_the_functions_time() -> None:
    assert Budget.start(3000, remaining_ms=30_000, margin_ms=200, clock=lambda: 0.0).total_ms == 3000
    assert Budget.start(3000, remaining_ms=1_000, margin_ms=200, clock=lambda: 0.0).total_ms == 800


def test_an_allotment_is_capped_by_what_is_left() -> None:
    now = {"t": 0.0}
    budget = Budget.start(1000, remaining_ms=10_000, margin_ms=0, clock=lambda: now["t"])
    assert budget.allot(300) == 300
    now["t"] = 0.8
    assert budget.allot(300) == pytest.approx(200)
    now["t"] = 2.0
    assert budget.allot(300) == 0


def test_botocore_backoff_is_budgeted_between_attempts() -> None:
    assert backoff_allowance_ms(1) == 0
    assert backoff_allowance_ms(2) == 1000
    assert backoff_allowance_ms(3) == 3000


@pytest.mark.parametrize("allotment", [100, 149, 300, 999, 1200, 1500, 2500, 5000, 28_000])
@pytest.mark.parametrize("max_attempts", [1, 2, 3])
def test_the_worst_case_always_fits(allotment: int, max_attempts: int) -> None:
    timeouts = timeouts_for(allotment, max_attempts=max_attempts)

    assert timeouts.worst_case_ms <= allotment
    assert 1 <= timeouts.attempts <= max_attempts
    assert timeouts.connect_ms + timeouts.read_ms >= MIN_ATTEMPT_MS
    config = timeouts.botocore_config()
    assert config.read_timeout == timeouts.read_ms / 1000
    assert config.retries == {"mode": "standard", "total_max_attempts": timeouts.attempts}


def test_retries_are_used_only_when_they_fit() -> None:
    assert timeouts_for(500, max_attempts=2).attempts == 1
    assert timeouts_for(1500, max_attempts=2).attempts == 2


def test_no_attempt_when_too_little_is_left() -> None:
    with pytest.raises(BudgetExhaustedError):
        timeouts_for(MIN_ATTEMPT_MS - 1, max_attempts=2)


def test_clients_are_reused_per_service_and_timeouts(aws: None) -> None:
    pool = ClientPool()
    # A frozen clock: creating the first client can take seconds on a busy machine, and a budget that
    # ran down meanwhile would rightly ask for other timeouts (another client).
    budget = Budget.start(3000, remaining_ms=30_000, margin_ms=0, clock=lambda: 0.0)
    first = pool.for_call("dynamodb", budget, cap_ms=1000, max_attempts=2)
    again = pool.for_call("dynamodb", budget, cap_ms=1000, max_attempts=2)
    assert first is again and len(pool) == 1
    pool.for_call("sqs", budget, cap_ms=1000, max_attempts=2)
    assert len(pool) == 2
