"""ops consumer status/pause/resume and `circuit close` resuming the circuit's consumers, on moto, against
the same mappings, circuit table and controller the reconciler reads (tests/unit/reconciler/world.py)."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest

from lambdas.contracts.circuit import HOLD_UNTIL, hold_key
from lambdas.contracts.consumer_control import CONTROL_OUTPUT
from lambdas.reconciler.decisions import Observation, decide
from tests.unit.helpers import REGION
from tests.unit.ops.conftest import run
from tests.unit.reconciler.world import World, build_world

STACK = "resilient-orders-consumers"


@pytest.fixture
def world(aws: None) -> World:
    built = build_world()
    # A stack that carries the control document as its output, as the service stack does.
    template: dict[str, Any] = {
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue", "Properties": {}}},
        "Outputs": {
            CONTROL_OUTPUT: {"Value": built.control.model_dump_json()},
            "CircuitTableName": {"Value": built.table},
        },
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=STACK, TemplateBody=json.dumps(template)
    )
    return built


def test_status_shows_mapping_circuit_controller_and_what_the_reconciler_will_do(world: World) -> None:
    world.set_enabled("orders", False)
    world.circuit("partner", "OPEN")
    execution = world.start_controller("partner")

    result = run("--stack", STACK, "--json", "consumer", "status")

    assert result.code == 0, result.err
    shown = {c["name"]: c for c in json.loads(result.out)["consumers"]}
    assert shown["orders"]["mapping_state"] == "Disabled"
    assert shown["orders"]["paused_since"] is not None
    assert shown["orders"]["circuit_state"] == "OPEN"
    assert shown["orders"]["running_controllers"] == [execution]
    assert shown["orders"]["reconciler_next"] == "controlled"
    assert shown["notifications"]["mapping_state"] == "Enabled"
    assert shown["notifications"]["paused_by_controller"] is False
    assert shown["notifications"]["paused_since"] is None


def test_status_in_text(world: World) -> None:
    world.set_enabled("orders", False)

    result = run("--stack", STACK, "consumer", "status")

    assert result.code == 0, result.err
    assert "consumer orders: Disabled since" in result.out
    assert "circuit partner: CLOSED (no record)" in result.out
    assert "reconciler: resume" in result.out


def test_pause_disables_and_holds_so_the_reconciler_leaves_it(world: World) -> None:
    result = run("--stack", STACK, "consumer", "pause", "orders", "--hold-minutes", "30", "--yes")

    assert result.code == 0, result.err
    assert world.state("orders") == "Disabled"
    hold = world.item(hold_key("orders"))
    assert hold is not None
    until = float(hold[HOLD_UNTIL]["N"])
    assert abs(until - (time.time() + 1800)) < 10
    observed = Observation(
        consumer="orders",
        circuit="partner",
        mapping_state="Disabled",
        mapping_modified_at=time.time(),
        circuit_state=None,
        controller_running=False,
        paused_by_controller=True,
        hold_until=until,
    )
    assert str(decide(observed, time.time()).action) == "held"


def test_pause_and_resume_need_confirmation(world: World) -> None:
    paused = run("--stack", STACK, "consumer", "pause", "orders")
    assert paused.code == 3 and "pass --yes" in paused.err
    assert world.state("orders") == "Enabled"

    world.set_enabled("orders", False)
    resumed = run("--stack", STACK, "consumer", "resume", "orders", answer="no")
    assert resumed.code == 3
    assert world.state("orders") == "Disabled"


def test_resume_enables_and_removes_the_hold(world: World) -> None:
    assert run("--stack", STACK, "consumer", "pause", "orders", "--yes").code == 0

    result = run("--stack", STACK, "consumer", "resume", "orders", answer="yes")

    assert result.code == 0, result.err
    assert world.state("orders") == "Enabled"
    assert world.item(hold_key("orders")) is None


def test_resume_warns_when_the_circuit_is_still_open(world: World) -> None:
    world.set_enabled("orders", False)
    world.circuit("partner", "OPEN")

    result = run("--stack", STACK, "consumer", "resume", "orders", "--yes")

    assert result.code == 0, result.err
    assert "its circuit is OPEN" in result.out and "circuit close partner" in result.out
    assert world.state("orders") == "Enabled"


def test_an_unknown_consumer_is_a_usage_error(world: World) -> None:
    result = run("--stack", STACK, "consumer", "resume", "ledger", "--yes")

    assert result.code == 2 and "no consumer 'ledger'" in result.err


def test_circuit_close_resumes_the_paused_consumers_of_that_circuit_only(world: World) -> None:
    world.circuit("partner", "OPEN")
    world.set_enabled("orders", False)
    world.set_enabled("notifications", False)  # another circuit's consumer: not this command's business

    result = run("--stack", STACK, "circuit", "close", "partner", "--yes")

    assert result.code == 0, result.err
    assert world.item("partner")["state"]["S"] == "CLOSED"  # type: ignore[index]
    assert world.state("orders") == "Enabled"
    assert world.state("notifications") == "Disabled"


def test_circuit_close_of_a_closed_circuit_still_resumes_its_paused_consumers(world: World) -> None:
    """The stuck case of the issue: the controller gave up, someone closed the circuit, nothing resumed."""
    world.set_enabled("orders", False)

    result = run("--stack", STACK, "circuit", "close", "partner", "--yes")

    assert result.code == 0, result.err
    assert "already closed" in result.out
    assert world.state("orders") == "Enabled"


def test_circuit_close_asks_before_resuming_and_keeps_the_close_when_declined(world: World) -> None:
    world.circuit("partner", "OPEN")
    world.set_enabled("orders", False)
    answers = iter(["yes", "no"])
    from ops.console import Console

    def answer(self: Console, action: str) -> None:
        if next(answers) != "yes":
            from ops.errors import Aborted

            raise Aborted("not confirmed; nothing was changed")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Console, "confirm", answer)
        result = run("--stack", STACK, "circuit", "close", "partner")

    assert result.code == 0, result.err
    assert world.item("partner")["state"]["S"] == "CLOSED"  # type: ignore[index]
    assert world.state("orders") == "Disabled"
    assert "left paused: orders" in result.out
