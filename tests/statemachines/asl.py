"""Load, fill, compress and inspect the ASL definitions in ``statemachines/``; read execution histories.

Placeholders
------------
The definitions are valid JSON with ``${Name}`` placeholders only inside JSON strings, filled at deploy
time by CDK (``DefinitionBody.from_file`` + ``definition_substitutions``) and here by ``fill``:

* ``${ChargeFunctionArn}`` (order_fulfilment): the Charge task's function
* ``${ShipFunctionArn}`` (order_fulfilment): the Ship task's function
* ``${NotifyFunctionArn}`` (order_fulfilment): the Notify task's function
* ``${FailureQueueUrl}`` (order_fulfilment): SQS queue receiving failed orders
* ``${NotificationFailureQueueUrl}`` (order_fulfilment): SQS queue receiving failed notifications
* ``${CircuitTableName}`` (circuit_controller): the Powertools circuit table
* ``${ClockFunctionArn}`` (circuit_controller): ``lambdas/fulfilment/clock.py``
* ``${ProbeFunctionArn}`` (circuit_controller): the function that calls the dependency's health route

Numbers cannot be placeholders (a substituted ``"${X}"`` stays a string), so the definitions hold fixed
production numbers: every Lambda task has ``TimeoutSeconds`` = ``LAMBDA_TASK_TIMEOUT_SECONDS``, which
CDK must also use as those functions' timeout.

Time compression
----------------
moto really sleeps Retry intervals and Wait states. ``compress_timings`` rewrites a loaded definition
(never the files): every retrier gets ``IntervalSeconds`` 1 and ``MaxDelaySeconds`` 1 (the smallest
integers ASL and moto accept; with ``JitterStrategy`` FULL moto then sleeps uniform(0, 1) s), fixed Wait
``Seconds`` are capped, and Task ``TimeoutSeconds`` can be overridden. ``MaxAttempts``, error names,
routing and ``BackoffRate`` stay as written, so attempt counts in tests are the production ones. The
controller's waits come from its input (``SecondsPath``), so its tests pass small config values.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tests.waiting import MACHINE_TOO_SLOW

STATEMACHINES_DIR = Path(__file__).resolve().parents[2] / "statemachines"

ORDER_FULFILMENT = "order_fulfilment"
CIRCUIT_CONTROLLER = "circuit_controller"
ALL_MACHINES = (ORDER_FULFILMENT, CIRCUIT_CONTROLLER)

LAMBDA_TASK_TIMEOUT_SECONDS = 30

PLACEHOLDERS: dict[str, frozenset[str]] = {
    ORDER_FULFILMENT: frozenset(
        {
            "ChargeFunctionArn",
            "ShipFunctionArn",
            "NotifyFunctionArn",
            "FailureQueueUrl",
            "NotificationFailureQueueUrl",
        }
    ),
    CIRCUIT_CONTROLLER: frozenset({"CircuitTableName", "ClockFunctionArn", "ProbeFunctionArn"}),
}

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})


def path_of(machine: str) -> Path:
    return STATEMACHINES_DIR / f"{machine}.asl.json"


def raw_text(machine: str) -> str:
    return path_of(machine).read_text()


def placeholders_in(text: str) -> set[str]:
    return set(_PLACEHOLDER.findall(text))


def fill(machine: str, values: Mapping[str, str]) -> dict[str, Any]:
    """The definition with placeholders substituted, as CDK would; every placeholder must get a value."""
    text = raw_text(machine)
    missing = placeholders_in(text) - set(values)
    if missing:
        raise KeyError(f"{machine}: no value for placeholder(s) {sorted(missing)}")
    unknown = set(values) - placeholders_in(text)
    if unknown:
        raise KeyError(f"{machine}: unknown placeholder(s) {sorted(unknown)}")
    filled = _PLACEHOLDER.sub(lambda m: json.dumps(values[m.group(1)])[1:-1], text)
    return json.loads(filled)


def iter_states(definition: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(qualified name, state) for every state, including Map item processors and Parallel branches."""
    for name, state in definition["States"].items():
        qualified = f"{prefix}{name}"
        yield qualified, state
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from iter_states(processor, prefix=f"{qualified}/")
        for index, branch in enumerate(state.get("Branches", [])):
            yield from iter_states(branch, prefix=f"{qualified}[{index}]/")


def tasks(definition: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: state for name, state in iter_states(definition) if state["Type"] == "Task"}


_DYNAMODB_TASK = "arn:aws:states:::dynamodb:"
CIRCUIT_RECORD_KEY_PATH = "$.circuit"  # the record's key; the lock's is States.Format('{}#controller', ...)


def circuit_record_tasks(definition: Mapping[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Task name -> (DynamoDB action, Parameters) of every task that reads or writes a circuit's record
    (its key is the input's circuit name itself, not the controller's lock item beside it)."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, state in tasks(definition).items():
        resource = state.get("Resource", "")
        if not resource.startswith(_DYNAMODB_TASK):
            continue
        key = state["Parameters"]["Key"]
        if set(key) != {"id"}:
            raise AssertionError(f"{name}: a circuit table key other than id: {key}")
        if key["id"].get("S.$") == CIRCUIT_RECORD_KEY_PATH:
            found[name] = (resource.removeprefix(_DYNAMODB_TASK), state["Parameters"])
    return found


def is_lambda_task(state: Mapping[str, Any]) -> bool:
    resource = state.get("Resource", "")
    return resource == "arn:aws:states:::lambda:invoke" or (
        ":lambda:" in resource and ":function:" in resource
    )


def compress_timings(
    definition: Mapping[str, Any],
    *,
    wait_seconds_cap: int = 0,
    task_timeouts: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """A copy with retry delays shrunk to <= 1 s and fixed waits capped (see module docstring)."""
    compressed = copy.deepcopy(dict(definition))
    overrides = dict(task_timeouts or {})
    for name, state in iter_states(compressed):
        for retrier in state.get("Retry", []):
            if retrier.get("MaxAttempts", 3) > 0:
                retrier["IntervalSeconds"] = 1
                retrier["MaxDelaySeconds"] = 1
        if state["Type"] == "Wait" and "Seconds" in state:
            state["Seconds"] = min(state["Seconds"], wait_seconds_cap)
        if name in overrides:
            state["TimeoutSeconds"] = overrides.pop(name)
    if overrides:
        raise KeyError(f"no such task(s) to override: {sorted(overrides)}")
    return compressed


def retry_delays(retrier: Mapping[str, Any]) -> list[float]:
    """The (pre-jitter) delays before each retry a retrier allows, with ASL defaults."""
    interval = retrier.get("IntervalSeconds", 1)
    rate = retrier.get("BackoffRate", 2.0)
    cap = retrier.get("MaxDelaySeconds")
    delays = []
    for attempt in range(retrier.get("MaxAttempts", 3)):
        delay = interval * rate**attempt
        delays.append(min(delay, cap) if cap else delay)
    return delays


def worst_case_task_seconds(state: Mapping[str, Any]) -> float:
    """Longest a Task can take: every retrier exhausted (each keeps its own count), each attempt timing out."""
    timeout = state["TimeoutSeconds"]
    total = timeout
    for retrier in state.get("Retry", []):
        delays = retry_delays(retrier)
        total += len(delays) * timeout + sum(delays)
    return total


# ---------------------------------------------------------------------------------------- executions


def wait_for(sfn: Any, execution_arn: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        description = sfn.describe_execution(executionArn=execution_arn)
        if description["status"] in TERMINAL_STATUSES:
            return description
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{MACHINE_TOO_SLOW}: {execution_arn} still {description['status']} after {timeout}s"
            )
        time.sleep(0.02)


def history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events.extend(page["events"])
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def entered_states(events: list[dict[str, Any]]) -> list[str]:
    """Names of the states entered, in order."""
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


def task_attempts(events: list[dict[str, Any]], state_name: str) -> list[dict[str, Any]]:
    """One entry per invocation of the state's task: {"parameters", "error", "cause", "succeeded"}.

    Attributes TaskScheduled/TaskFailed/TaskSucceeded/TaskTimedOut events to the state entered last,
    which is exact for our machines (no Parallel; Map iterations run their own states).
    """
    attempts: list[dict[str, Any]] = []
    current = None
    for event in events:
        if "stateEnteredEventDetails" in event:
            current = event["stateEnteredEventDetails"]["name"]
            continue
        if current != state_name:
            continue
        kind = event["type"]
        if kind == "TaskScheduled":
            details = event["taskScheduledEventDetails"]
            attempts.append({"parameters": json.loads(details["parameters"]), "succeeded": False})
        elif kind == "TaskSucceeded" and attempts:
            attempts[-1]["succeeded"] = True
        elif kind in ("TaskFailed", "TaskTimedOut") and attempts:
            details = event.get("taskFailedEventDetails") or event.get("taskTimedOutEventDetails") or {}
            attempts[-1]["error"] = details.get("error")
            attempts[-1]["cause"] = details.get("cause")
    return attempts
