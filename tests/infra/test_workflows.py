"""The workflows as deployed: the ASL files, their substitutions, timeouts and least privilege."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from lambdas.contracts.circuit_wait import (
    CIRCUIT_WAIT_LIMIT_VARIABLE,
    CIRCUIT_WAIT_MAX_LIMIT_SECONDS,
    CIRCUIT_WAIT_MAX_SECONDS,
    CIRCUIT_WAIT_SECONDS_VARIABLE,
)
from lambdas.contracts.events import circuit_events_source
from stacks.config import (
    CONTROLLER_MAX_RECOVERY_SECONDS,
    CONTROLLER_MAX_REQUIRED_SUCCESSES,
    DependencySettings,
    WorkflowSettings,
)
from stacks.workflows import STARTER_NAME, STATEMACHINES, circuit_wait_environment
from tests.conftest import upper_bound
from tests.infra.conftest import Synthesized
from tests.statemachines.asl import LAMBDA_TASK_TIMEOUT_SECONDS

MACHINES = {
    "fulfilment": "order_fulfilment",
    "controller": "circuit_controller",
}


def _machine(dev: Synthesized, attribute: str) -> tuple[str, dict[str, Any]]:
    logical_id = dev.stack.get_logical_id(getattr(dev.stack.workflows, attribute).node.default_child)
    return logical_id, dev.resources[logical_id]["Properties"]


def _role_statements(dev: Synthesized, role_id: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in dev.of_type("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _actions(statement: dict[str, Any]) -> list[str]:
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


@pytest.mark.parametrize(("attribute", "stem"), MACHINES.items())
def test_each_machine_is_deployed_from_its_asl_file_with_every_placeholder_filled(
    dev: Synthesized, attribute: str, stem: str
) -> None:
    _, props = _machine(dev, attribute)
    assert "DefinitionS3Location" in props  # the file itself, as an asset
    placeholders = set(re.findall(r"\$\{(\w+)\}", (STATEMACHINES / f"{stem}.asl.json").read_text()))
    assert set(props["DefinitionSubstitutions"]) == placeholders
    assert props["StateMachineType"] == "STANDARD"
    assert props["TracingConfiguration"] == {"Enabled": True}
    logging = props["LoggingConfiguration"]
    assert logging["Level"] == dev.stack.config.workflows.log_level
    assert logging["IncludeExecutionData"] is False


def test_task_functions_time_out_when_the_asl_tasks_do(dev: Synthesized) -> None:
    asl_timeouts = set()
    for stem in MACHINES.values():
        definition = json.loads((STATEMACHINES / f"{stem}.asl.json").read_text())
        for state in _states(definition):
            if state.get("Type") == "Task" and "lambda:invoke" in state.get("Resource", ""):
                asl_timeouts.add(state["TimeoutSeconds"])
    assert asl_timeouts == {LAMBDA_TASK_TIMEOUT_SECONDS}
    for function in dev.stack.workflows.functions.values():
        props = dev.resources[dev.stack.get_logical_id(function.function.node.default_child)]["Properties"]
        assert props["Timeout"] == LAMBDA_TASK_TIMEOUT_SECONDS
        assert props["ReservedConcurrentExecutions"] == dev.stack.config.workflows.task_concurrency


def _states(definition: dict[str, Any]) -> list[dict[str, Any]]:
    states = []
    for state in definition["States"].values():
        states.append(state)
        for branch in state.get("Branches", []):
            states += _states(branch)
        if "ItemProcessor" in state:
            states += _states(state["ItemProcessor"])
    return states


def test_fulfilment_may_only_invoke_its_tasks_and_write_its_failure_sinks(dev: Synthesized) -> None:
    _, props = _machine(dev, "fulfilment")
    statements = _role_statements(dev, props["RoleArn"]["Fn::GetAtt"][0])
    workflows = dev.stack.workflows
    aliases = {
        dev.stack.get_logical_id(workflows.functions[n].alias.node.default_child)
        for n in ("Charge", "Ship", "Notify")
    }
    sinks = {
        dev.stack.get_logical_id(s.queue.node.default_child)
        for s in (workflows.failures, workflows.notification_failures)
    }
    for statement in statements:
        actions = set(_actions(statement))
        if statement["Resource"] == "*":
            assert all(a.startswith(("logs:", "xray:")) for a in actions), actions
        elif actions == {"lambda:InvokeFunction"}:
            assert {r["Ref"] for r in statement["Resource"]} == aliases
        else:
            assert "sqs:SendMessage" in actions
            assert {r["Fn::GetAtt"][0] for r in statement["Resource"]} == sinks


def test_controller_may_pause_exactly_the_consumers_of_its_dependency(dev: Synthesized) -> None:
    _, props = _machine(dev, "controller")
    statements = _role_statements(dev, props["RoleArn"]["Fn::GetAtt"][0])
    (pause,) = [s for s in statements if _actions(s) == ["lambda:UpdateEventSourceMapping"]]
    paused = {dev.stack.resolve(m.mapping_id)["Ref"] for m in dev.stack.workflows.pausable.values()
              if m.name in ("orders", STARTER_NAME)}  # fmt: skip
    assert len(paused) == 2
    for mapping in paused:
        assert mapping in json.dumps(pause["Resource"])
    notifications = dev.stack.resolve(dev.stack.consumers["notifications"].event_source_mapping_id)["Ref"]
    assert notifications not in json.dumps(pause["Resource"])
    circuit_table = dev.stack.get_logical_id(dev.stack.circuits.table.node.default_child)
    (table,) = [s for s in statements if any(a.startswith("dynamodb:") for a in _actions(s))]
    # GetItem: the resume ramp reads the circuit record (real calls still succeed?) before each step.
    assert set(_actions(table)) == {"dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    assert table["Resource"] == {"Fn::GetAtt": [circuit_table, "Arn"]}


def test_controller_starts_on_a_circuit_opening_and_on_the_error_alarm(dev: Synthesized) -> None:
    controller_id, _ = _machine(dev, "controller")
    rules = [
        r["Properties"]
        for r in dev.of_type("AWS::Events::Rule").values()
        if any(t["Arn"] == {"Ref": controller_id} for t in r["Properties"]["Targets"])
    ]
    dependencies = dev.stack.config.dependencies
    paused = {
        c.settings.dependency
        for c in dev.stack.consumers.values()
        if dependencies[c.settings.dependency].critical
    }
    assert paused == {"partner"}  # the notifier is non-critical: its consumer falls back instead of waiting
    assert len(rules) == 2 * len(paused)
    circuits_bus = dev.stack.get_logical_id(dev.stack.circuits.events.node.default_child)
    for dependency in paused:
        opened = next(r for r in rules if r["EventPattern"].get("detail") == {"dependency": [dependency]})
        assert opened["EventBusName"] == {"Ref": circuits_bus}
        assert opened["EventPattern"]["source"] == [circuit_events_source(dev.stack.config.service_name)]
        assert opened["EventPattern"]["detail-type"] == ["CircuitOpened"]
        alarmed = [
            r
            for r in rules
            if r["EventPattern"].get("source") == ["aws.cloudwatch"]
            and f'\\"circuit\\":\\"{dependency}\\"' in json.dumps(r["Targets"][0]["Input"])
        ]
        assert len(alarmed) == 1
        assert alarmed[0]["EventPattern"]["detail"] == {"state": {"value": ["ALARM"]}}
        # The breaker's event is a claim the controller checks against the record; the alarm is not.
        assert '\\"trigger\\":\\"breaker\\"' in json.dumps(opened["Targets"][0]["Input"])
        assert '\\"trigger\\":\\"alarm\\"' in json.dumps(alarmed[0]["Targets"][0]["Input"])
        for rule in (opened, alarmed[0]):
            controller_input = json.dumps(rule["Targets"][0]["Input"])
            assert f'\\"circuit\\":\\"{dependency}\\"' in controller_input
            assert "eventSourceMappings" in controller_input and "requiredSuccesses" in controller_input
            # Resume gently: 2, then doubling up to the consumer's max_concurrency, one step at a time.
            orders = dev.stack.config.consumers["orders"]
            levels = dev.stack.config.workflows.resume_levels(orders.max_concurrency)
            assert levels[0] == 2 and levels[-1] == orders.max_concurrency
            assert f'\\"levels\\":{json.dumps(levels, separators=(",", ":"))}' in controller_input
            assert f'\\"rampSteps\\":{len(levels)}' in controller_input
            assert "maxBackoffSeconds" not in controller_input and "maxProbes" not in controller_input


def test_the_probe_sends_the_dependencys_canary(dev: Synthesized) -> None:
    probe_id = dev.stack.get_logical_id(dev.stack.workflows.functions["Probe"].function.node.default_child)
    variables = dev.of_type("AWS::Lambda::Function")[probe_id]["Properties"]["Environment"]["Variables"]
    canary = json.loads(variables["PROBE_CANARY"])
    assert canary == {
        "method": "POST",
        "path": "/charges",
        "body": {"orderId": "canary-probe", "amountCents": 1, "currency": "EUR"},
        "expectedStatuses": [200],
    }


def test_every_event_source_leaves_six_timeouts_of_visibility(dev: Synthesized) -> None:
    """Template-wide: a queue must outlast six tries of its consumer, or messages are handled twice."""
    functions = dev.of_type("AWS::Lambda::Function")
    queues = dev.of_type("AWS::SQS::Queue")
    mappings = dev.of_type("AWS::Lambda::EventSourceMapping").values()
    assert len(list(mappings)) >= 2
    for mapping in mappings:
        props = mapping["Properties"]
        queue = queues[props["EventSourceArn"]["Fn::GetAtt"][0]]["Properties"]
        function_id = next(
            k for k in functions if k in json.dumps(props["FunctionName"]) or _alias_of(dev, k, props)
        )
        timeout = functions[function_id]["Properties"]["Timeout"]
        assert queue["VisibilityTimeout"] >= 6 * timeout + props.get("MaximumBatchingWindowInSeconds", 0)
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert (
            props["ScalingConfig"]["MaximumConcurrency"]
            <= functions[function_id]["Properties"]["ReservedConcurrentExecutions"]
        )


def _alias_of(dev: Synthesized, function_id: str, mapping: dict[str, Any]) -> bool:
    return any(
        alias["Properties"]["FunctionName"] == {"Ref": function_id}
        and alias_id in json.dumps(mapping["FunctionName"])
        for alias_id, alias in dev.of_type("AWS::Lambda::Alias").items()
    )


def test_notify_calls_the_non_critical_notifier_on_its_own_circuit(dev: Synthesized) -> None:
    functions = dev.stack.workflows.functions
    env = {
        name: dev.resources[dev.stack.get_logical_id(functions[name].function.node.default_child)][
            "Properties"
        ]["Environment"]["Variables"]
        for name in ("Charge", "Notify")
    }
    assert env["Charge"]["DEPENDENCY_NAME"] == "partner"
    assert env["Notify"]["DEPENDENCY_NAME"] == "notifier"
    assert env["Notify"]["DEPENDENCY_CRITICAL"] == "false"


def test_the_controller_input_every_rule_sends_passes_the_machines_own_input_checks(dev: Synthesized) -> None:
    """The deployed input must satisfy CheckInputValues, or every pause ends in InvalidInput."""
    definition = json.loads((STATEMACHINES / "circuit_controller.asl.json").read_text())
    (choice,) = definition["States"]["CheckInputValues"]["Choices"]
    bounds = [c for c in choice["And"] if (c["Variable"].startswith("$.config.") and "NumericLessThanEquals" in c)
              or (c["Variable"].startswith("$.config.") and "NumericGreaterThanEquals" in c)]  # fmt: skip
    assert bounds
    controller_id, _ = _machine(dev, "controller")
    for rule in dev.of_type("AWS::Events::Rule").values():
        for target in rule["Properties"]["Targets"]:
            if target["Arn"] != {"Ref": controller_id}:
                continue
            text = (
                target["Input"]
                if isinstance(target["Input"], str)
                else "".join(p if isinstance(p, str) else "token" for p in target["Input"]["Fn::Join"][1])
            )
            config = json.loads(text)["config"]
            for bound in bounds:
                value = config[bound["Variable"].removeprefix("$.config.")]
                if "NumericLessThanEquals" in bound:
                    assert value <= bound["NumericLessThanEquals"], bound
                else:
                    assert value >= bound["NumericGreaterThanEquals"], bound


def test_the_starter_lets_executions_wait_out_the_longest_pause_of_the_controller(dev: Synthesized) -> None:
    """An execution already running when the circuit opens waits for as long as the controller can keep
    the starter paused, plus the probes that close the circuit; then the failure is recorded."""
    starter_id = dev.stack.get_logical_id(dev.stack.workflows.starter.function.node.default_child)
    variables = dev.resources[starter_id]["Properties"]["Environment"]["Variables"]
    partner = dev.stack.config.dependencies["partner"]
    workflows = dev.stack.config.workflows
    assert variables[CIRCUIT_WAIT_SECONDS_VARIABLE] == str(partner.breaker_recovery_seconds)
    limit = int(variables[CIRCUIT_WAIT_LIMIT_VARIABLE])
    assert limit >= workflows.controller_max_pause_seconds + partner.breaker_recovery_seconds
    assert limit <= CIRCUIT_WAIT_MAX_LIMIT_SECONDS


def test_every_allowed_configuration_gives_the_starter_a_circuit_wait_it_accepts() -> None:
    """The starter refuses (at init) a wait the fulfilment machine's TimeoutSeconds is not sized for."""
    dependency = DependencySettings.model_validate(
        {"breaker_recovery_seconds": CONTROLLER_MAX_RECOVERY_SECONDS,
         "breaker_success_threshold": CONTROLLER_MAX_REQUIRED_SUCCESSES}
    )  # fmt: skip
    workflows = WorkflowSettings.model_validate(
        {"controller_max_pause_seconds": upper_bound(WorkflowSettings, "controller_max_pause_seconds"),
         "controller_probe_interval_seconds": upper_bound(WorkflowSettings, "controller_probe_interval_seconds")}
    )  # fmt: skip
    variables = circuit_wait_environment(dependency, workflows)
    assert int(variables[CIRCUIT_WAIT_SECONDS_VARIABLE]) <= CIRCUIT_WAIT_MAX_SECONDS
    assert int(variables[CIRCUIT_WAIT_LIMIT_VARIABLE]) <= CIRCUIT_WAIT_MAX_LIMIT_SECONDS
