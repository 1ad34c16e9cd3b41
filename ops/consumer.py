"""Show, pause and resume the load-leveling consumers: their SQS event source mappings.

The consumers, their mappings, their circuits and the circuit controller come from the stack output
``ConsumerControl`` (stacks/consumer_reconciler.py; the reconciler reads the same document).

``status``  per consumer: mapping state and since when, circuit state, the controller executions running
            for its circuit, an operator's hold, and what the reconciler will do on its next run.
``pause``   disables the mapping and records a hold (``consumer#<name>#hold`` in the circuit table) so the
            reconciler leaves it paused until the hold lapses (``--hold-minutes``); the paused alarm
            still fires after ``reconciler.paused_alarm_minutes``, so a forgotten pause is noticed.
``resume``  removes the hold and enables the mapping. With the circuit still OPEN the consumer's
            breaker fails fast and its messages go back to the queue (each receive counts).

``circuit close`` resumes the paused consumers of that circuit through ``resume_paused`` below.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from lambdas.contracts.circuit import CLOSED, HOLD_EXPIRATION, HOLD_REASON, HOLD_UNTIL, RECORD_KEY, hold_key
from lambdas.contracts.consumer_control import CONTROL_OUTPUT, MAPPING_DISABLED, MAPPING_ENABLED
from lambdas.reconciler.control import ConsumerControl
from lambdas.reconciler.decisions import Observation, decide
from lambdas.reconciler.reconcile import Reconciler
from ops.aws import Aws
from ops.console import Console, iso_time
from ops.errors import EXIT_OK, Aborted, UsageError
from ops.inventory import Inventory

# A hold outlives its lapse by a day before TTL may delete it (status still shows it lapsed).
HOLD_TTL_GRACE_SECONDS = 86_400


def control_of(inventory: Inventory) -> ConsumerControl:
    raw = inventory.require_output(CONTROL_OUTPUT, "consumers", "--stack of a stack with a reconciler")
    try:
        return ConsumerControl.model_validate_json(raw)
    except ValidationError as error:
        raise UsageError(f"stack output {CONTROL_OUTPUT} is not a control document: {error}") from None


def _reconciler(aws: Aws, control: ConsumerControl, now: Callable[[], float]) -> Reconciler:
    return Reconciler(
        control,
        lambda_client=aws.client("lambda"),
        dynamodb=aws.client("dynamodb"),
        stepfunctions=aws.client("stepfunctions"),
        clock=now,
    )


def _require(control: ConsumerControl, name: str) -> None:
    if name not in control.consumers:
        raise UsageError(f"no consumer {name!r}; the stack has {sorted(control.consumers)}")


def describe(observation: Observation, running: list[str], now: float) -> dict[str, Any]:
    decision = decide(observation, now)
    paused = observation.mapping_state != MAPPING_ENABLED
    return {
        "name": observation.consumer,
        "mapping_state": observation.mapping_state,
        "paused_since": iso_time(observation.mapping_modified_at) if paused else None,
        "paused_seconds": decision.paused_seconds,
        "circuit": observation.circuit,
        "circuit_state": observation.circuit_state or f"{CLOSED} (no record)",
        "paused_by_controller": observation.paused_by_controller,
        "running_controllers": running,
        "hold_until": iso_time(observation.hold_until),
        "reconciler_next": str(decision.action),
        "reason": decision.reason,
    }


def status(aws: Aws, console: Console, control: ConsumerControl, now: Callable[[], float] = time.time) -> int:
    reconciler = _reconciler(aws, control, now)
    running = reconciler.running_controllers()
    shown = []
    for name in sorted(control.consumers):
        observation = reconciler.observe(name, running)
        consumer = describe(observation, running.get(observation.circuit, []), now())
        shown.append(consumer)
        line = f"consumer {name}: {consumer['mapping_state']}"
        if consumer["paused_since"]:
            line += f" since {consumer['paused_since']} ({consumer['paused_seconds']} s)"
        console.info(line)
        console.info(
            f"  circuit {consumer['circuit']}: {consumer['circuit_state']}"
            + ("" if consumer["paused_by_controller"] else " (the controller never pauses this consumer)")
        )
        for execution in consumer["running_controllers"]:
            console.info(f"  controller running: {execution}")
        if consumer["hold_until"]:
            console.info(f"  held by an operator until {consumer['hold_until']}")
        console.info(f"  reconciler: {consumer['reconciler_next']} ({consumer['reason']})")
    console.result({"consumers": shown})
    return EXIT_OK


def pause(
    aws: Aws,
    console: Console,
    control: ConsumerControl,
    name: str,
    *,
    hold_minutes: int,
    reason: str,
    now: Callable[[], float] = time.time,
) -> int:
    _require(control, name)
    consumer = control.consumers[name]
    state = aws.client("lambda").get_event_source_mapping(UUID=consumer.mapping)["State"]
    console.info(f"consumer {name}: {state}")
    console.confirm(
        f"pause consumer {name} (disable its event source mapping {consumer.mapping}): messages wait in its "
        f"queue; the reconciler leaves it paused for {hold_minutes} minutes"
    )
    until = int(now()) + hold_minutes * 60
    aws.client("dynamodb").put_item(
        TableName=control.circuit_table,
        Item={
            RECORD_KEY: {"S": hold_key(name)},
            HOLD_UNTIL: {"N": str(until)},
            HOLD_REASON: {"S": reason},
            HOLD_EXPIRATION: {"N": str(until + HOLD_TTL_GRACE_SECONDS)},
        },
    )
    after = aws.client("lambda").update_event_source_mapping(UUID=consumer.mapping, Enabled=False)["State"]
    console.info(f"consumer {name}: {after}; held until {iso_time(until)} (`consumer resume {name}` ends it)")
    console.result({"name": name, "before": state, "after": after, "hold_until": iso_time(until)})
    return EXIT_OK


def _enable(aws: Aws, control: ConsumerControl, name: str) -> str:
    aws.client("dynamodb").delete_item(
        TableName=control.circuit_table, Key={RECORD_KEY: {"S": hold_key(name)}}
    )
    state: str = aws.client("lambda").update_event_source_mapping(
        UUID=control.consumers[name].mapping, Enabled=True
    )["State"]
    return state


def resume(
    aws: Aws, console: Console, control: ConsumerControl, name: str, now: Callable[[], float] = time.time
) -> int:
    _require(control, name)
    reconciler = _reconciler(aws, control, now)
    running = reconciler.running_controllers()
    observation = reconciler.observe(name, running)
    shown = describe(observation, running.get(observation.circuit, []), now())
    console.info(
        f"consumer {name}: {shown['mapping_state']}; circuit {observation.circuit}: {shown['circuit_state']}"
    )
    if observation.mapping_state == MAPPING_ENABLED:
        console.info(f"consumer {name} is already running: nothing to do")
        console.result({"name": name, "before": shown, "changed": False})
        return EXIT_OK
    warning = ""
    if observation.circuit_state not in (None, CLOSED):
        warning += (
            f"; its circuit is {observation.circuit_state}, so it fails fast and returns messages to the queue "
            f"(close the circuit first with `circuit close {observation.circuit}` if the dependency is healthy)"
        )
    if shown["running_controllers"]:
        warning += "; a circuit controller is running and will pause it again only on a new opening"
    console.confirm(f"resume consumer {name} (enable its event source mapping){warning}")
    after = _enable(aws, control, name)
    console.info(f"consumer {name}: {after}")
    console.result({"name": name, "before": shown, "after": after, "changed": True})
    return EXIT_OK


def resume_paused(aws: Aws, console: Console, control: ConsumerControl, circuit: str) -> dict[str, str]:
    """After ``circuit close``: resume the consumers of ``circuit`` that are paused (with confirmation)."""
    lambda_ = aws.client("lambda")
    paused = {
        name: lambda_.get_event_source_mapping(UUID=consumer.mapping)["State"]
        for name, consumer in sorted(control.consumers.items())
        if consumer.circuit == circuit
    }
    paused = {name: state for name, state in paused.items() if state in (MAPPING_DISABLED, "Disabling")}
    if not paused:
        console.info(f"no consumer of circuit {circuit} is paused")
        return {}
    console.info(f"paused consumers of circuit {circuit}: {', '.join(paused)}")
    try:
        console.confirm(f"resume {', '.join(paused)} (enable their event source mappings, remove any hold)")
    except Aborted:
        # The circuit is closed already; only the resume was declined.
        console.info(f"left paused: {', '.join(paused)} (`consumer resume NAME` resumes one)")
        return {}
    resumed = {name: _enable(aws, control, name) for name in paused}
    for name, state in resumed.items():
        console.info(f"consumer {name}: {state}")
    return resumed
