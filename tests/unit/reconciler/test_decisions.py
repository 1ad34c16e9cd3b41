"""The reconciler's decisions, one observed situation at a time, on a clock the test holds."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lambdas.reconciler.decisions import Action, Observation, decide, lock_is_stale, restart_name

NOW = 1_767_225_600.0
PAUSED = Observation(
    consumer="orders",
    circuit="partner",
    mapping_state="Disabled",
    mapping_modified_at=NOW - 900,
    circuit_state="CLOSED",
    controller_running=False,
    paused_by_controller=True,
)


@pytest.mark.parametrize("circuit_state", ["CLOSED", None])
def test_disabled_with_a_closed_circuit_and_no_controller_is_resumed(circuit_state: str | None) -> None:
    decision = decide(replace(PAUSED, circuit_state=circuit_state), NOW)

    assert decision.action is Action.RESUME
    assert decision.paused_seconds == 900


@pytest.mark.parametrize("circuit_state", ["OPEN", "HALF_OPEN"])
def test_disabled_with_an_open_circuit_and_no_controller_restarts_the_controller(circuit_state: str) -> None:
    decision = decide(replace(PAUSED, circuit_state=circuit_state), NOW)

    assert decision.action is Action.RESTART_CONTROLLER
    assert decision.circuit == "partner"


def test_a_consumer_the_controller_never_pauses_is_resumed_even_with_its_circuit_open() -> None:
    decision = decide(replace(PAUSED, circuit_state="OPEN", paused_by_controller=False), NOW)

    assert decision.action is Action.RESUME


@pytest.mark.parametrize("circuit_state", ["CLOSED", "OPEN", None])
def test_a_running_controller_owns_the_mapping(circuit_state: str | None) -> None:
    decision = decide(replace(PAUSED, circuit_state=circuit_state, controller_running=True), NOW)

    assert decision.action is Action.CONTROLLED
    assert decision.paused_seconds == 900  # still measured: the alarm covers long outages too


def test_an_operators_hold_is_respected_until_it_lapses() -> None:
    held = replace(PAUSED, hold_until=NOW + 60)

    assert decide(held, NOW).action is Action.HELD
    assert decide(held, NOW + 60).action is Action.RESUME  # lapsed: nobody owns the pause any more


@pytest.mark.parametrize("state", ["Enabled", "Enabling"])
def test_a_running_consumer_is_left_alone_and_not_paused(state: str) -> None:
    decision = decide(replace(PAUSED, mapping_state=state, circuit_state="OPEN"), NOW)

    assert decision.action is Action.NONE
    assert decision.paused_seconds == 0


@pytest.mark.parametrize("state", ["Disabling", "Updating", "Creating"])
def test_a_mapping_mid_transition_is_looked_at_next_run(state: str) -> None:
    assert decide(replace(PAUSED, mapping_state=state), NOW).action is Action.WAIT


def test_paused_time_follows_the_clock_and_never_goes_negative() -> None:
    assert decide(PAUSED, NOW + 100).paused_seconds == 1000
    assert decide(replace(PAUSED, mapping_modified_at=NOW + 5), NOW).paused_seconds == 0
    assert decide(replace(PAUSED, mapping_modified_at=None), NOW).paused_seconds == 0


@pytest.mark.parametrize(
    ("status", "stale"),
    [
        ("RUNNING", False),
        ("SUCCEEDED", True),
        ("FAILED", True),
        ("TIMED_OUT", True),
        ("ABORTED", True),
        (None, True),
    ],
)
def test_a_lock_is_stale_once_its_owner_stopped_running(status: str | None, stale: bool) -> None:
    assert lock_is_stale(status) is stale


def test_restart_names_are_one_per_circuit_and_minute() -> None:
    assert restart_name("partner", NOW) == restart_name("partner", NOW + 59)
    assert restart_name("partner", NOW) != restart_name("partner", NOW + 60)
    assert restart_name("partner", NOW) != restart_name("notifier", NOW)
