"""Static checks of every statemachines/*.asl.json: statelint, structure, placeholders, timeouts."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lambdas.contracts import circuit, errors
from lambdas.contracts.circuit_wait import CIRCUIT_WAIT_MAX_LIMIT_SECONDS, CIRCUIT_WAIT_MAX_SECONDS
from lambdas.fulfilment.errors import CircuitWaitExpiredError, UnconfirmedResultError, ValidationError
from lambdas.shared.dependency_client import (
    BudgetExhaustedError,
    DependencyUnavailableError,
    PermanentUpstreamError,
    TransientUpstreamError,
    UpstreamConfigurationError,
)
from stacks.config import (
    CONTROLLER_MAX_RECOVERY_SECONDS,
    CONTROLLER_MAX_REQUIRED_SUCCESSES,
    CONTROLLER_TIMEOUT_SECONDS,
    ConsumerSettings,
    WorkflowSettings,
)
from tests.conftest import upper_bound
from tests.statemachines import asl

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STATELINT = PROJECT_ROOT / "node_modules" / ".bin" / "statelint"
MAX_RETRY_ATTEMPTS = 10


def statelint(*paths: Path) -> subprocess.CompletedProcess[str]:
    if not STATELINT.exists() or shutil.which("node") is None:
        pytest.fail(f"statelint is required: {STATELINT} (npm ci) and node on PATH")
    return subprocess.run([str(STATELINT), *map(str, paths)], capture_output=True, text=True, timeout=60)


def load(machine: str) -> dict[str, Any]:
    return json.loads(asl.raw_text(machine))


def test_every_definition_file_is_covered() -> None:
    files = {p.name.removesuffix(".asl.json") for p in asl.STATEMACHINES_DIR.glob("*.asl.json")}
    assert files == set(asl.ALL_MACHINES)


def test_statelint_accepts_every_definition() -> None:
    result = statelint(*(asl.path_of(m) for m in asl.ALL_MACHINES))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda d: d["States"]["Charge"]["Retry"][1].update(JitterStrategy="SOMETIMES"), "JitterStrategy"),
        (lambda d: d["States"]["Charge"]["Retry"][1].update(MaxDelaySeconds=0), "MaxDelaySeconds"),
        (lambda d: d["States"]["Charge"].update(Next="NoSuchState"), "NoSuchState"),
        (lambda d: d["States"]["Charge"].update(QueryLanguage="JSONata"), "QueryLanguage"),
    ],
    ids=["bad-jitter", "zero-max-delay", "dangling-next", "jsonata"],
)
def test_statelint_rejects_a_broken_definition(tmp_path: Path, breakage: Any, expected: str) -> None:
    definition = load(asl.ORDER_FULFILMENT)
    breakage(definition)
    broken = tmp_path / "broken.asl.json"
    broken.write_text(json.dumps(definition))

    result = statelint(broken)

    assert result.returncode != 0
    assert expected in result.stdout


@pytest.mark.parametrize("machine", asl.ALL_MACHINES)
def test_placeholders_are_the_documented_ones_and_only_inside_strings(machine: str) -> None:
    text = asl.raw_text(machine)
    assert asl.placeholders_in(text) == set(asl.PLACEHOLDERS[machine])

    def strings(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [s for key, value in node.items() for s in [key, *strings(value)]]
        if isinstance(node, list):
            return [s for item in node for s in strings(item)]
        return [node] if isinstance(node, str) else []

    found = {name for s in strings(json.loads(text)) for name in asl.placeholders_in(s)}
    assert found == set(asl.PLACEHOLDERS[machine])  # every occurrence parses as (part of) a JSON string


@pytest.mark.parametrize("machine", asl.ALL_MACHINES)
def test_every_task_has_bounded_jittered_retries_and_a_catch_all(machine: str) -> None:
    definition = load(machine)
    assert 0 < definition["TimeoutSeconds"] < 99999999
    tasks = asl.tasks(definition)
    assert tasks
    for name, task in tasks.items():
        assert isinstance(task.get("TimeoutSeconds"), int), name
        retriers = task.get("Retry")
        assert retriers, f"{name}: no Retry"
        retried = [r for r in retriers if r.get("MaxAttempts", 3) > 0]
        assert retried, f"{name}: nothing is retried"
        for retrier in retried:
            assert retrier.get("JitterStrategy") == "FULL", (name, retrier)
            assert isinstance(retrier.get("MaxDelaySeconds"), int), (name, retrier)
            assert 0 < retrier["MaxAttempts"] <= MAX_RETRY_ATTEMPTS, (name, retrier)
            assert retrier.get("IntervalSeconds", 1) <= retrier["MaxDelaySeconds"], (name, retrier)
        # States.ALL may only be retried alone and last; specific names come first.
        for index, retrier in enumerate(retriers):
            if "States.ALL" in retrier["ErrorEquals"]:
                assert retrier["ErrorEquals"] == ["States.ALL"] and index == len(retriers) - 1, name
        catches = task.get("Catch", [])
        assert catches and catches[-1]["ErrorEquals"] == ["States.ALL"], (
            f"{name}: no final Catch on States.ALL"
        )


def test_lambda_tasks_time_out_with_the_function() -> None:
    """TimeoutSeconds of every Lambda task == the functions' timeout CDK must configure."""
    for machine in asl.ALL_MACHINES:
        for name, task in asl.tasks(load(machine)).items():
            if asl.is_lambda_task(task):
                assert task["TimeoutSeconds"] == asl.LAMBDA_TASK_TIMEOUT_SECONDS, (machine, name)


def test_permanent_errors_are_never_retried() -> None:
    for name, task in asl.tasks(load(asl.ORDER_FULFILMENT)).items():
        if not asl.is_lambda_task(task):
            continue
        first = task["Retry"][0]
        assert first["ErrorEquals"] == ["PermanentUpstreamError", "ValidationError"], name
        assert first["MaxAttempts"] == 0, name
        retried = {e for r in task["Retry"][1:] for e in r["ErrorEquals"]}
        assert not retried & {
            "PermanentUpstreamError",
            "ValidationError",
            "States.ALL",
            "States.TaskFailed",
        }, name


def test_retried_error_names_match_the_dependency_client_exceptions() -> None:
    """Step Functions matches the exception class name exactly: a rename in the client must show up here."""
    client = PROJECT_ROOT / "lambdas" / "shared" / "dependency_client.py"
    if not client.exists():
        pytest.skip("dependency client not written yet")
    classes = {
        node.name for node in ast.walk(ast.parse(client.read_text())) if isinstance(node, ast.ClassDef)
    }
    charge = load(asl.ORDER_FULFILMENT)["States"]["Charge"]
    named = {e for r in charge["Retry"] for e in r["ErrorEquals"]}
    expected_from_client = {
        errors.PERMANENT_UPSTREAM_ERROR,
        errors.TRANSIENT_UPSTREAM_ERROR,
        errors.BUDGET_EXHAUSTED_ERROR,
        errors.DEPENDENCY_UNAVAILABLE_ERROR,
    }
    assert expected_from_client <= named
    assert expected_from_client <= classes, sorted(expected_from_client - classes)


def _error_names(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        yield from node.get("ErrorEquals", [])
        for value in node.values():
            yield from _error_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _error_names(value)


# Prefixes of the error names AWS defines (Step Functions, the Lambda and SDK integrations).
AWS_ERROR_PREFIXES = ("States.", "Sandbox.", "Lambda.", "DynamoDB.", "SQS.")


def test_every_project_error_the_machines_match_is_a_contract_raised_under_that_name() -> None:
    """An error name of ours in a Retry or Catch is in lambdas.contracts.errors, and each contract name is
    the name of the exception class that raises it: a dead name (nothing raises it) cannot linger."""
    contract_names = {
        value for name, value in vars(errors).items() if name.isupper() and isinstance(value, str)
    }
    ours = {
        name
        for machine in asl.ALL_MACHINES
        for name in _error_names(load(machine))
        if not name.startswith(AWS_ERROR_PREFIXES)
    }
    assert ours <= contract_names, sorted(ours - contract_names)
    raised = {
        cls.__name__
        for cls in (
            TransientUpstreamError,
            BudgetExhaustedError,
            DependencyUnavailableError,
            PermanentUpstreamError,
            UpstreamConfigurationError,
            ValidationError,
            UnconfirmedResultError,
            CircuitWaitExpiredError,
        )
    }
    assert contract_names - {errors.LAMBDA_TOO_MANY_REQUESTS} == raised


def _attribute_names(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        yield from node.get("ExpressionAttributeNames", {}).values()
        for value in node.values():
            yield from _attribute_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _attribute_names(value)


def test_the_controller_reads_and_writes_the_circuit_table_by_the_contract_names() -> None:
    """The ASL cannot import lambdas.contracts.circuit: every attribute it names must be one of it."""
    contract_names = {
        value for name, value in vars(circuit).items() if name.isupper() and isinstance(value, str)
    }
    named = set(_attribute_names(load(asl.CIRCUIT_CONTROLLER)))
    assert named and named <= contract_names, sorted(named - contract_names)


@pytest.mark.parametrize("state", ["EnsureCircuitOpen", "CloseCircuit"])
def test_the_controllers_changes_of_state_end_the_fleets_failure_streak(state: str) -> None:
    """lambdas/shared/fleet_circuit.py: every change of state wipes the fleet's streak, the controller's too."""
    update = load(asl.CIRCUIT_CONTROLLER)["States"][state]["Parameters"]
    alias = next(
        key
        for key, name in update["ExpressionAttributeNames"].items()
        if name == circuit.RECORD_FLEET_FAILURES
    )
    assert alias in update["UpdateExpression"].split(" REMOVE ", 1)[1].replace(",", " ").split()


# The controller's writes of a circuit's record, each one of lambdas.contracts.circuit's (which owns them).
CONTROLLER_RECORD_WRITES = {
    "EnsureCircuitOpen": circuit.OPEN_NOW,
    "ReopenCircuit": circuit.REOPEN,
    "CloseCircuit": circuit.CLOSE,
}


def test_the_controller_writes_the_circuit_record_with_the_contracts_expressions_verbatim() -> None:
    """The ASL cannot import lambdas.contracts.circuit: each of its writes of a record must be one of the
    contract's Writes, expression, guard, aliases and constants alike; only the writer's inputs (the
    clock's ``:now`` and ``:expiration``) are its own, taken from the execution's state."""
    record_tasks = asl.circuit_record_tasks(load(asl.CIRCUIT_CONTROLLER))
    writes = {name: parameters for name, (action, parameters) in record_tasks.items() if action != "getItem"}
    assert set(writes) == set(CONTROLLER_RECORD_WRITES)
    for name, parameters in writes.items():
        write = CONTROLLER_RECORD_WRITES[name]
        assert record_tasks[name][0] == "updateItem", name
        assert parameters["UpdateExpression"] == write.update, name
        assert parameters["ConditionExpression"] == write.condition, name
        assert parameters["ExpressionAttributeNames"] == write.names, name
        values = parameters["ExpressionAttributeValues"]
        assert {k: v for k, v in values.items() if k in write.constants} == write.constants, name
        assert set(values) - set(write.constants) == write.inputs, name
        assert all(set(values[k]) == {"N.$"} for k in write.inputs), name  # numbers from the state


def test_the_controller_reads_a_records_state_by_the_contracts_alias() -> None:
    reads = {
        name: parameters
        for name, (action, parameters) in asl.circuit_record_tasks(load(asl.CIRCUIT_CONTROLLER)).items()
        if action == "getItem"
    }
    assert reads
    for name, parameters in reads.items():
        assert parameters["ExpressionAttributeNames"].items() <= circuit.ALIASES.items(), name


def _successors(state: dict[str, Any]) -> set[str]:
    following = {state["Next"]} if "Next" in state else set()
    following |= {c["Next"] for c in state.get("Choices", [])}
    following |= {c["Next"] for c in state.get("Catch", [])}
    if "Default" in state:
        following.add(state["Default"])
    return following


def _longest_path_seconds(definition: dict[str, Any], cut: frozenset[str] = frozenset()) -> float:
    """The longest path through the definition; states in ``cut`` are left out (a loop's way back)."""
    states = definition["States"]
    memo: dict[str, float] = {}

    def longest(name: str, visiting: frozenset[str]) -> float:
        assert name not in visiting, f"cycle through {name}"
        if name not in memo:
            state = states[name]
            own = asl.worst_case_task_seconds(state) if state["Type"] == "Task" else 0
            following = _successors(state) - cut
            memo[name] = own + max((longest(n, visiting | {name}) for n in following), default=0)
        return memo[name]

    return longest(definition["StartAt"], frozenset())


def _circuit_waits(definition: dict[str, Any]) -> dict[str, str]:
    """Wait state -> the task it goes back to: the only loops of the fulfilment workflow."""
    return {
        name: state["Next"]
        for name, state in definition["States"].items()
        if state["Type"] == "Wait" and state.get("SecondsPath") == "$.circuitWait.seconds"
    }


def test_fulfilment_timeout_outlasts_the_worst_case_path() -> None:
    """Every retry exhausted and every attempt timing out still ends inside the machine's TimeoutSeconds,
    so a timeout of the whole execution (which no Catch can record) means something is stuck.

    The fulfilment workflow's only loops wait out an open circuit, until one deadline for the whole
    execution (``circuitWait.until``, at most CIRCUIT_WAIT_MAX_LIMIT_SECONDS after the start): past it,
    each looping step finishes the round it is in (a wait and the task, every retrier exhausted) and
    then runs once more, to raise CircuitWaitExpiredError at the latest after the same again."""
    definition = load(asl.ORDER_FULFILMENT)
    waits = _circuit_waits(definition)
    longest = _longest_path_seconds(definition, cut=frozenset(waits))
    states = definition["States"]
    after_deadline = sum(
        2 * (CIRCUIT_WAIT_MAX_SECONDS + asl.worst_case_task_seconds(states[task])) for task in waits.values()
    )
    waiting = CIRCUIT_WAIT_MAX_LIMIT_SECONDS + after_deadline if waits else 0
    assert longest + waiting <= definition["TimeoutSeconds"]


def test_fulfilment_waits_out_an_open_circuit_only_on_charge_and_ship() -> None:
    """Each loop: the step's Catch of an open circuit -> a Choice that records the failure when the input
    has no deadline -> a Wait of one recovery window -> the step again."""
    states = load(asl.ORDER_FULFILMENT)["States"]
    waits = _circuit_waits(load(asl.ORDER_FULFILMENT))
    assert sorted(waits.values()) == ["Charge", "Ship"]
    for wait, task in waits.items():
        circuit_catch, *_, last = states[task]["Catch"]
        assert set(circuit_catch["ErrorEquals"]) == {errors.DEPENDENCY_UNAVAILABLE_ERROR}
        assert last["ErrorEquals"] == ["States.ALL"] and last["Next"] == f"{task}Failed"
        choice = states[circuit_catch["Next"]]
        assert choice["Type"] == "Choice" and choice["Default"] == wait
        assert choice["Choices"] == [
            {"Variable": "$.circuitWait.until", "IsNull": True, "Next": f"{task}Failed"}
        ]
        assert states[task]["Parameters"]["Payload"]["circuitWaitUntil.$"] == "$.circuitWait.until"


def test_controller_timeout_outlasts_its_worst_case_under_the_config_bounds() -> None:
    """The deadline (maxPauseSeconds) ends every pause in ConsumerLeftPaused before the machine times out.

    Worst case: the deadline passes just after a failed probe checked it; that loop finishes, then every
    probe passes, the consumers resume and ramp to the top, and at the last step the circuit is open
    again: the re-pause sees the deadline and gives up.
    """
    definition = load(asl.CIRCUIT_CONTROLLER)
    states = definition["States"]
    assert definition["TimeoutSeconds"] == CONTROLLER_TIMEOUT_SECONDS
    bounds = {
        rule["Variable"].removeprefix("$.config."): rule["NumericLessThanEquals"]
        for rule in states["CheckInputValues"]["Choices"][0]["And"]
        if "NumericLessThanEquals" in rule
    }
    assert bounds["recoverySeconds"] == CONTROLLER_MAX_RECOVERY_SECONDS
    assert bounds["requiredSuccesses"] == CONTROLLER_MAX_REQUIRED_SUCCESSES
    assert bounds["probeIntervalSeconds"] == upper_bound(
        WorkflowSettings, "controller_probe_interval_seconds"
    )
    max_pause = upper_bound(WorkflowSettings, "controller_max_pause_seconds")
    ramp_step = upper_bound(WorkflowSettings, "controller_ramp_step_seconds")
    ramp_levels = len(WorkflowSettings().resume_levels(upper_bound(ConsumerSettings, "max_concurrency")))
    task = asl.worst_case_task_seconds

    def map_task(name: str) -> float:
        [inner] = asl.tasks(states[name]["ItemProcessor"]).values()
        return task(inner)

    probe = task(states["Probe"])
    failed_loop = (
        bounds["recoverySeconds"] + probe + task(states["ReadClockForReopen"]) + task(states["ReopenCircuit"])
    )
    passing_probes = (
        bounds["recoverySeconds"]
        + probe
        + (bounds["requiredSuccesses"] - 1) * (bounds["probeIntervalSeconds"] + probe)
    )
    ramp = (ramp_levels - 1) * (ramp_step + task(states["CheckCircuitClosed"]) + map_task("RaiseConcurrency"))
    worst = (
        task(states["ReadClock"])
        + task(states["AcquireControllerLock"])
        + task(states["EnsureCircuitOpen"])
        + map_task("DisableConsumers")
        + max_pause
        + failed_loop
        + passing_probes
        + task(states["CloseCircuit"])
        + map_task("EnableConsumers")
        + ramp
        + ramp_step
        + task(states["CheckCircuitClosed"])
        + task(states["ReadClockForRepause"])
        + map_task("DisableConsumers")
        + task(states["ReleaseControllerLock"])
    )
    assert worst <= definition["TimeoutSeconds"]
    # The lock outlives the execution, so an execution that dies holding it cannot block for longer.
    lock_expiry = states["ReadClock"]["Parameters"]["Payload"]["plus"]["lockExpiry"]
    assert lock_expiry > definition["TimeoutSeconds"]


def test_compression_keeps_attempts_and_routing() -> None:
    original = asl.fill(asl.ORDER_FULFILMENT, {p: "x" for p in asl.PLACEHOLDERS[asl.ORDER_FULFILMENT]})
    compressed = asl.compress_timings(original, task_timeouts={"Charge": 2})
    for (name, before), (_, after) in zip(
        asl.iter_states(original), asl.iter_states(compressed), strict=True
    ):
        for r_before, r_after in zip(before.get("Retry", []), after.get("Retry", []), strict=True):
            assert r_after["ErrorEquals"] == r_before["ErrorEquals"]
            assert r_after.get("MaxAttempts") == r_before.get("MaxAttempts")
            if r_before.get("MaxAttempts", 3) > 0:
                assert (r_after["IntervalSeconds"], r_after["MaxDelaySeconds"]) == (1, 1)
        assert {k: v for k, v in after.items() if k not in ("Retry", "TimeoutSeconds")} == {
            k: v for k, v in before.items() if k not in ("Retry", "TimeoutSeconds")
        }, name
    assert compressed["States"]["Charge"]["TimeoutSeconds"] == 2
    assert original["States"]["Charge"]["TimeoutSeconds"] == asl.LAMBDA_TASK_TIMEOUT_SECONDS


@pytest.mark.parametrize("machine", asl.ALL_MACHINES)
def test_moto_parses_the_filled_definition(machine: str, sfn: Any) -> None:
    definition = asl.fill(
        machine, {p: f"arn:aws:lambda:eu-west-1:123456789012:function:{p}" for p in asl.PLACEHOLDERS[machine]}
    )
    arn = sfn.create_state_machine(
        name=machine.replace("_", "-"),
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::123456789012:role/r",
    )["stateMachineArn"]
    assert json.loads(sfn.describe_state_machine(stateMachineArn=arn)["definition"]) == definition


def test_dynamodb_expressions_define_exactly_what_they_use() -> None:
    """DynamoDB rejects unused or undefined expression names/values (moto is more lenient, so check here)."""

    checked = 0
    for name, task in asl.tasks(load(asl.CIRCUIT_CONTROLLER)).items():
        if not task["Resource"].startswith("arn:aws:states:::dynamodb:"):
            continue
        params = task["Parameters"]
        expressions = " ".join(
            params.get(key, "") for key in ("UpdateExpression", "ConditionExpression", "ProjectionExpression")
        )
        assert set(re.findall(r"#\w+", expressions)) == set(params.get("ExpressionAttributeNames", {})), name
        values = {key.removesuffix(".$") for key in params.get("ExpressionAttributeValues", {})}
        assert set(re.findall(r":\w+", expressions)) == values, name
        checked += 1
    assert checked >= 3
