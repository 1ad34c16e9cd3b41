"""The retry amplification budget: worst-case dependency calls per accepted message, checked at synth.

Every layer that can repeat a call multiplies the layers beneath it: two layers of 3 attempts are the
seeds' retry storm (9 calls for one request). Nothing in a template shows the product, so a fork can
rebuild the storm by configuration (raise ``max_attempts``, add a Step Functions Retry, raise
``maxReceiveCount``). This module walks every path a message takes to a dependency, multiplies the
layers with the figures the stage deploys (config, the ASL files' Retry blocks, the functions' client
settings), and ``check`` fails synth naming the path and its layers when a path exceeds its budget:
``retry_budget`` of the dependency in cdk.json, ``aws_retry_budget`` where an AWS service is the
dependency.

A layer whose repeats are deduplicated before the dependency (an idempotency record, an execution name)
counts 1 and says why. Step Functions counts each retrier separately, so a task can run
1 + the sum of the MaxAttempts of the retriers whose errors can follow a call (a throttled invocation
never ran; an open circuit made no call).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lambdas.contracts import errors
from lambdas.contracts.retries import (
    STEP_FUNCTIONS_TOTAL_MAX_ATTEMPTS,
    TABLE_TOTAL_MAX_ATTEMPTS,
    calls_over_receives,
)
from stacks.config import ConfigError, ServiceConfig

STATEMACHINES = Path(__file__).resolve().parent.parent / "statemachines"
# Template metadata holding the paths, for `make synth`'s summary and the benchmark.
METADATA_KEY = "RetryAmplification"

# Errors after which the task made no call to its dependency: the invocation never ran (throttled), the
# circuit was open, or the request was refused before any attempt.
NO_CALL_ERRORS = frozenset(
    {
        errors.LAMBDA_TOO_MANY_REQUESTS,
        errors.DEPENDENCY_UNAVAILABLE_ERROR,
        errors.PERMANENT_UPSTREAM_ERROR,
        errors.VALIDATION_ERROR,
    }
)
# The workflow task functions and the dependency each calls (role in WorkflowSettings).
FULFILMENT_TASKS = {"ChargeFunctionArn": "dependency", "ShipFunctionArn": "dependency",
                    "NotifyFunctionArn": "notification_dependency"}  # fmt: skip


@dataclass(frozen=True)
class Layer:
    name: str  # what repeats the call, with the figures it repeats by
    factor: int  # how many calls it turns one call beneath it into
    why: str = ""  # why a layer that repeats counts 1


@dataclass(frozen=True)
class RetryPath:
    path: str
    dependency: str
    layers: tuple[Layer, ...]
    budget: int
    per: str = "accepted message"

    @property
    def worst_case(self) -> int:
        return math.prod(layer.factor for layer in self.layers)

    @property
    def within_budget(self) -> bool:
        return self.worst_case <= self.budget


class RetryBudgetExceededError(ConfigError):
    pass


def task_invocations(state: Mapping[str, Any]) -> int:
    """How often Step Functions can run a task whose runs each may call: 1 + the retries after a call."""
    retries = 0
    for retrier in state.get("Retry", []):
        if any(error not in NO_CALL_ERRORS for error in retrier["ErrorEquals"]):
            retries += int(retrier.get("MaxAttempts", 3))
    return 1 + retries


def waits_out_open_circuits(state: Mapping[str, Any]) -> bool:
    """A Catch of the no-call errors alone that leads elsewhere than the catch-all (the step's failure
    record): a wait loop that runs the task again."""
    catches = state.get("Catch", [])
    failure = next((c["Next"] for c in catches if c["ErrorEquals"] == ["States.ALL"]), None)
    return any(set(c["ErrorEquals"]) <= NO_CALL_ERRORS and c["Next"] != failure for c in catches)


def _task_states(states: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any]]]:
    for name, state in states.items():
        if state.get("Type") == "Task":
            yield name, state
        for branch in state.get("Branches", []):
            yield from _task_states(branch["States"])
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                yield from _task_states(state[key]["States"])


def _function_substitution(state: Mapping[str, Any]) -> str | None:
    name = (state.get("Parameters") or {}).get("FunctionName", "")
    return name[2:-1] if isinstance(name, str) and name.startswith("${") and name.endswith("}") else None


def _load(file_stem: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((STATEMACHINES / f"{file_stem}.asl.json").read_text())
    return document


def paths(config: ServiceConfig) -> list[RetryPath]:
    """Every path a message takes to a dependency, with the layers that can repeat its call."""
    return [*_consumer_paths(config), *_workflow_paths(config), *_aws_paths(config)]


def _consumer_paths(config: ServiceConfig) -> list[RetryPath]:
    out = []
    for name, consumer in config.consumers.items():
        dependency = config.dependencies[consumer.dependency]
        if consumer.subscription:
            source = f"POST /events -> bus -> {consumer.subscription} queue"
            receives = config.events.subscription_max_receive_count
            first = Layer(
                f"EventBridge target retries ({config.events.target_retry_attempts})",
                1,
                "a redelivered event keeps its id, the consumer's idempotency key",
            )
        else:
            source = f"POST /orders -> {name} queue"
            receives = consumer.max_receive_count
            first = Layer(
                "producer resends with the same Idempotency-Key",
                1,
                "the consumer's idempotency record answers",
            )
        layers: tuple[Layer, ...]
        if consumer.max_dependency_tries is None:
            layers = (
                first,
                Layer(
                    f"client attempts ({dependency.max_attempts}) over queue receives ({receives}), "
                    "one attempt fewer per receive",
                    calls_over_receives(dependency.max_attempts, receives),
                ),
            )
        else:
            tries = consumer.max_dependency_tries
            layers = (
                first,
                Layer(
                    f"queue receives ({receives}) beyond the consumer's tries",
                    1,
                    "a receive that calls the dependency counts a try first (write-ahead, "
                    "lambdas/shared/dependency_tries.py); the other receives made no call",
                ),
                Layer(
                    f"client attempts ({dependency.max_attempts}) over the consumer's tries ({tries}), "
                    "one attempt fewer per try",
                    calls_over_receives(dependency.max_attempts, tries),
                ),
            )
        out.append(
            RetryPath(
                f"{source} -> {name} consumer -> {consumer.dependency}",
                consumer.dependency,
                layers,
                dependency.retry_budget,
            )
        )
    return out


def _workflow_paths(config: ServiceConfig) -> list[RetryPath]:
    workflows = config.workflows
    starts = Layer(
        f"fulfilment queue receives ({config.events.subscription_max_receive_count}) and the starter's "
        "StartExecution attempts",
        1,
        "the execution is named after the event: a repeated start is the same execution",
    )
    out = []
    for state_name, state in _task_states(_load("order_fulfilment")["States"]):
        role = FULFILMENT_TASKS.get(_function_substitution(state) or "")
        if role is None:
            continue
        dependency_name = getattr(workflows, role)
        layers = [starts]
        if waits_out_open_circuits(state):
            layers.append(
                Layer(
                    f"{state_name} waits out an open circuit and runs again (circuitWait)",
                    1,
                    "entered only after the open circuit made no call; the calls once it lets them through "
                    "again belong to a new circuit cycle, which the breaker bounds (it reopens after "
                    "breaker_failure_threshold failures)",
                )
            )
        layers += [
            Layer(f"Step Functions Retry on {state_name}", task_invocations(state)),
            Layer("task client attempts (workflows.task_max_attempts)", workflows.task_max_attempts),
        ]
        out.append(
            RetryPath(
                f"POST /events -> bus -> {workflows.subscription} queue -> starter -> workflow -> "
                f"{state_name} -> {dependency_name}",
                dependency_name,
                tuple(layers),
                config.dependencies[dependency_name].retry_budget,
            )
        )
    for state_name, state in _task_states(_load("circuit_controller")["States"]):
        if _function_substitution(state) == "ProbeFunctionArn":
            for dependency_name, dependency in config.dependencies.items():
                out.append(
                    RetryPath(
                        f"circuit controller -> {state_name} -> {dependency_name}",
                        dependency_name,
                        (
                            Layer(f"Step Functions Retry on {state_name}", task_invocations(state)),
                            Layer("probe attempts (one canary call, no retries)", 1),
                        ),
                        dependency.retry_budget,
                        per="probe (one per probe interval while the circuit is open)",
                    )
                )
    return out


def _aws_paths(config: ServiceConfig) -> list[RetryPath]:
    """Paths whose dependency is an AWS API: the SDK's own attempts are a retry layer too."""
    out = [
        RetryPath(
            f"POST /events -> bus -> {config.workflows.subscription} queue -> starter -> Step Functions",
            "stepfunctions:StartExecution",
            (
                Layer("fulfilment queue receives", config.events.subscription_max_receive_count),
                Layer("AWS SDK attempts (standard mode)", STEP_FUNCTIONS_TOTAL_MAX_ATTEMPTS),
            ),
            config.aws_retry_budget,
        )
    ]
    for name, consumer in config.consumers.items():
        receives = (
            config.events.subscription_max_receive_count
            if consumer.subscription
            else consumer.max_receive_count
        )
        out.append(
            RetryPath(
                f"{name} queue -> {name} consumer -> DynamoDB (idempotency record)",
                "dynamodb",
                (
                    Layer(f"{name} queue receives", receives),
                    Layer("AWS SDK attempts (standard mode)", TABLE_TOTAL_MAX_ATTEMPTS),
                ),
                config.aws_retry_budget,
            )
        )
    return out


def as_metadata(retry_paths: Iterable[RetryPath]) -> list[dict[str, Any]]:
    return [
        {
            "path": p.path,
            "dependency": p.dependency,
            "per": p.per,
            "worstCase": p.worst_case,
            "budget": p.budget,
            "layers": [{"name": layer.name, "factor": layer.factor, "why": layer.why} for layer in p.layers],
        }
        for p in retry_paths
    ]


def worst_case_in(template: Mapping[str, Any], path_start: str) -> int | None:
    """The synthesized worst case of the first path starting with ``path_start`` (e.g. "POST /orders")."""
    for p in template.get("Metadata", {}).get(METADATA_KEY, []):
        if str(p["path"]).startswith(path_start):
            return int(p["worstCase"])
    return None


def table(metadata: Iterable[Mapping[str, Any]]) -> list[str]:
    """The paths (``as_metadata``) as ``make synth`` prints them."""
    lines = ["retry amplification: worst-case calls at the dependency (budget: cdk.json retry_budget)"]
    for p in metadata:
        lines.append(f"  {p['worstCase']:>3} of {p['budget']:<3} per {p['per']}: {p['path']}")
        lines.append(
            "            " + " x ".join(f"{layer['name']} [{layer['factor']}]" for layer in p["layers"])
        )
    return lines


def check(config: ServiceConfig) -> list[RetryPath]:
    """The paths, or RetryBudgetExceededError naming each path over its budget and its layers."""
    retry_paths = paths(config)
    over = [p for p in retry_paths if not p.within_budget]
    if over:
        details = "; ".join(
            f"{p.path}: {p.worst_case} calls per {p.per} > budget {p.budget} ("
            + " x ".join(f"{layer.name} = {layer.factor}" for layer in p.layers)
            + ")"
            for p in over
        )
        raise RetryBudgetExceededError(f"retry amplification over budget: {details}")
    return retry_paths
