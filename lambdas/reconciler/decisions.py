"""What the reconciler does about one consumer, decided from what it observed (no AWS in here).

The circuit controller pauses a consumer (disables its event source mapping) while its dependency's
circuit is open, and is the only one that resumes it. If the controller gives up, fails to enable, or
never runs because a stale lock blocks it, the mapping stays disabled with nobody to resume it. The
reconciler closes that gap, and only that gap: it never acts while a controller runs for the circuit
(the controller owns the mapping then) or while an operator's hold stands.

    mapping Enabled/Enabling                          -> nothing
    mapping Creating/Updating/Disabling/...           -> wait (mid-transition; look again next run)
    mapping Disabled, operator hold not yet lapsed    -> held
    mapping Disabled, a controller runs for it        -> controlled
    mapping Disabled, circuit CLOSED (or no record)   -> resume: nothing keeps it paused
    mapping Disabled, circuit OPEN/HALF_OPEN:
        consumer the controller pauses                -> restart the controller (it probes, then
                                                         closes and resumes, or gives up again)
        consumer it never pauses (non-critical)       -> resume: it falls back instead of failing
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from lambdas.contracts.circuit import CLOSED
from lambdas.contracts.consumer_control import EXECUTION_RUNNING, MAPPING_DISABLED, MAPPING_ENABLED

# An execution name per circuit and minute: overlapping runs start one controller, not two.
RESTART_NAME_MAX = 80


class Action(StrEnum):
    NONE = "none"
    WAIT = "wait"
    HELD = "held"
    CONTROLLED = "controlled"
    RESUME = "resume"
    RESTART_CONTROLLER = "restart-controller"


@dataclass(frozen=True)
class Observation:
    consumer: str
    circuit: str
    mapping_state: str
    # When the mapping last changed (Lambda's LastModified): for a disabled one, when it was paused.
    mapping_modified_at: float | None
    circuit_state: str | None  # None: no record, which Powertools reads as CLOSED
    controller_running: bool
    paused_by_controller: bool
    hold_until: float | None = None


@dataclass(frozen=True)
class Decision:
    consumer: str
    circuit: str
    action: Action
    paused_seconds: int
    reason: str


def paused_seconds(observation: Observation, now: float) -> int:
    if observation.mapping_state in (MAPPING_ENABLED, "Enabling"):
        return 0
    if observation.mapping_modified_at is None:
        return 0
    return max(0, int(now - observation.mapping_modified_at))


def decide(observation: Observation, now: float) -> Decision:
    paused = paused_seconds(observation, now)

    def decision(action: Action, reason: str) -> Decision:
        return Decision(observation.consumer, observation.circuit, action, paused, reason)

    state = observation.mapping_state
    if state in (MAPPING_ENABLED, "Enabling"):
        return decision(Action.NONE, f"mapping {state}")
    if state != MAPPING_DISABLED:
        return decision(Action.WAIT, f"mapping {state}: mid-transition, looked at again next run")
    if observation.hold_until is not None and observation.hold_until > now:
        return decision(Action.HELD, "paused by an operator (ops consumer pause) until the hold lapses")
    if observation.controller_running:
        return decision(Action.CONTROLLED, f"a circuit controller runs for {observation.circuit}")
    circuit = observation.circuit_state or CLOSED
    if circuit == CLOSED:
        return decision(
            Action.RESUME, f"circuit {observation.circuit} is {circuit} and no controller runs: resumed"
        )
    if observation.paused_by_controller:
        return decision(
            Action.RESTART_CONTROLLER,
            f"circuit {observation.circuit} is {circuit} and no controller runs: controller restarted",
        )
    return decision(
        Action.RESUME,
        f"circuit {observation.circuit} is {circuit}, but this consumer falls back instead of waiting: resumed",
    )


def lock_is_stale(owner_status: str | None) -> bool:
    """A lock whose owner no longer runs (finished, or unknown): it would block every new controller
    until it expires (hours), so the controller restarted for an open circuit would do nothing."""
    return owner_status != EXECUTION_RUNNING


def restart_name(circuit: str, now: float) -> str:
    return f"{circuit}-reconciled-{int(now) // 60}"[:RESTART_NAME_MAX]
