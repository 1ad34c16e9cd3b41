"""The retry amplification budget: every path's worst case, computed at synth from what is deployed."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from stacks import retry_budget
from stacks.application import build_app
from stacks.config import ServiceConfig
from tests.conftest import cdk_context
from tests.infra.conftest import Synthesized

ORDERS = "POST /orders -> orders queue -> orders consumer -> partner"
CHARGE = "POST /events -> bus -> fulfilment queue -> starter -> workflow -> Charge -> partner"

# The shipped configuration's real figures (worst-case calls at the dependency).
SHIPPED = {
    ORDERS: 9,  # 3 + 2 + 1 + 1 + 1 + 1 over the consumer's six tries
    "POST /events -> bus -> notifications queue -> notifications consumer -> notifier": 6,  # 2+1+1+1+1
    CHARGE: 9,  # 1 + 4 transient + 2 Lambda service + 2 timeout runs, one attempt each
    "POST /events -> bus -> fulfilment queue -> starter -> workflow -> Ship -> partner": 9,
    "POST /events -> bus -> fulfilment queue -> starter -> workflow -> Notify -> notifier": 7,
    "circuit controller -> Probe -> partner": 4,
    "circuit controller -> Probe -> notifier": 4,
    "POST /events -> bus -> fulfilment queue -> starter -> Step Functions": 15,  # 5 receives x 3 SDK
    "orders queue -> orders consumer -> DynamoDB (idempotency record)": 20,  # 10 receives x 2 SDK
    "notifications queue -> notifications consumer -> DynamoDB (idempotency record)": 10,  # 5 x 2
}


def config(stage: str = "dev", **service_changes: Any) -> ServiceConfig:
    context = cdk_context()
    service = copy.deepcopy(context["service"])
    for dotted, value in service_changes.items():
        *parents, leaf = dotted.split("__")
        node = service
        for key in parents:
            node = node[key]
        node[leaf] = value
    return ServiceConfig.from_context(service, context["stages"], stage)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_shipped_configuration_is_within_budget_with_its_real_figures(stage: str) -> None:
    paths = retry_budget.check(config(stage))
    assert {p.path: p.worst_case for p in paths} == SHIPPED
    assert all(p.within_budget for p in paths)


def test_the_template_carries_the_paths_and_the_synth_summary_prints_them(dev: Synthesized) -> None:
    metadata = dev.template.to_json()["Metadata"][retry_budget.METADATA_KEY]
    assert {p["path"]: p["worstCase"] for p in metadata} == SHIPPED
    printed = "\n".join(retry_budget.table(metadata))
    assert f"9 of 10  per accepted message: {ORDERS}" in printed


def test_more_client_attempts_over_the_queue_fail_synth_naming_the_path_and_the_layers() -> None:
    with pytest.raises(retry_budget.RetryBudgetExceededError) as raised:
        retry_budget.check(config(dependencies__partner__max_attempts=5))
    message = str(raised.value)
    # 5 + 4 + 3 + 2 + 1 + 1 over six tries
    assert f"{ORDERS}: 16 calls per accepted message > budget 10" in message
    assert "client attempts (5) over the consumer's tries (6), one attempt fewer per try = 16" in message
    assert "queue receives (10) beyond the consumer's tries = 1" in message


def test_retrying_inside_a_workflow_task_too_fails_synth() -> None:
    with pytest.raises(retry_budget.RetryBudgetExceededError) as raised:
        retry_budget.check(config(workflows__task_max_attempts=2))
    message = str(raised.value)
    assert f"{CHARGE}: 18 calls per accepted message > budget 10" in message
    assert (
        "Step Functions Retry on Charge = 9 x task client attempts (workflows.task_max_attempts) = 2"
        in message
    )


def test_a_larger_budget_set_for_the_dependency_in_config_admits_it() -> None:
    paths = retry_budget.check(
        config(dependencies__partner__max_attempts=5, dependencies__partner__retry_budget=16)
    )
    assert {p.path: p.worst_case for p in paths}[ORDERS] == 16


def test_a_retrier_added_to_the_workflow_fails_synth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    machines = tmp_path / "statemachines"
    shutil.copytree(retry_budget.STATEMACHINES, machines)
    definition = json.loads((machines / "order_fulfilment.asl.json").read_text())
    definition["States"]["Charge"]["Retry"].append({"ErrorEquals": ["States.ALL"], "MaxAttempts": 3})
    (machines / "order_fulfilment.asl.json").write_text(json.dumps(definition))
    monkeypatch.setattr(retry_budget, "STATEMACHINES", machines)

    with pytest.raises(retry_budget.RetryBudgetExceededError, match=f"{CHARGE}: 12 calls"):
        retry_budget.check(config())


def test_a_synth_over_budget_fails_before_any_resource_is_built() -> None:
    context = cdk_context()
    context["service"]["consumers"]["orders"]["max_dependency_tries"] = 12  # 3 + 2 + 10 x 1 = 15
    context["service"]["consumers"]["orders"]["max_receive_count"] = 13
    with pytest.raises(retry_budget.RetryBudgetExceededError, match="orders consumer -> partner: 15 calls"):
        build_app(context)


def test_more_receives_than_the_idempotency_writes_may_repeat_fail_synth() -> None:
    """Every receive writes the idempotency record, a try or not: receives x SDK attempts is counted."""
    with pytest.raises(retry_budget.RetryBudgetExceededError) as raised:
        retry_budget.check(config(consumers__orders__max_receive_count=12))
    assert "orders queue -> orders consumer -> DynamoDB (idempotency record): 24 calls" in str(raised.value)


@pytest.mark.parametrize(
    ("retry", "runs"),
    [
        ([], 1),
        ([{"ErrorEquals": ["Lambda.TooManyRequestsException"], "MaxAttempts": 5}], 1),  # it never ran
        ([{"ErrorEquals": ["DependencyUnavailableError"], "MaxAttempts": 4}], 1),  # no call
        ([{"ErrorEquals": ["TransientUpstreamError"], "MaxAttempts": 4}], 5),
        ([{"ErrorEquals": ["States.Timeout"]}], 4),  # MaxAttempts defaults to 3
        (
            [
                {
                    "ErrorEquals": ["Lambda.TooManyRequestsException", "Lambda.ServiceException"],
                    "MaxAttempts": 2,
                }
            ],
            3,
        ),
    ],
)
def test_a_task_runs_once_plus_every_retry_that_can_follow_a_call(
    retry: list[dict[str, Any]], runs: int
) -> None:
    assert retry_budget.task_invocations({"Type": "Task", "Retry": retry}) == runs


def test_the_circuit_wait_loops_are_named_as_layers_that_repeat_no_call() -> None:
    """Charge and Ship wait out an open circuit and run again; the path shows it (factor 1, with why)."""
    waits = {
        p.path.split(" -> ")[-2]: layer
        for p in retry_budget.check(config())
        for layer in p.layers
        if "open circuit" in layer.name
    }
    assert set(waits) == {"Charge", "Ship"}
    assert all(layer.factor == 1 and "new circuit cycle" in layer.why for layer in waits.values())
