"""The consumer reconciler as deployed: its schedule, its least privilege, its control document and
the paused alarm on exactly the metric the handler emits."""

from __future__ import annotations

import json
from typing import Any

from lambdas.contracts.consumer_control import CONTROL_ENV, CONTROL_OUTPUT
from lambdas.contracts.metrics import DIMENSION_CONSUMER, METRIC_PAUSED_SECONDS
from lambdas.reconciler.control import ConsumerControl
from stacks.workflows import STARTER_NAME
from tests.infra.conftest import Synthesized


def _logical_id(dev: Synthesized, construct: Any) -> str:
    return dev.stack.get_logical_id(construct.node.default_child)


def _function(dev: Synthesized) -> tuple[str, dict[str, Any]]:
    function_id = _logical_id(dev, dev.stack.reconciler.function.function)
    return function_id, dev.resources[function_id]["Properties"]


def _statements(dev: Synthesized) -> list[dict[str, Any]]:
    role_id = _logical_id(dev, dev.stack.reconciler.function.role)
    return [
        statement
        for policy in dev.of_type("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _actions(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return set(action if isinstance(action, list) else [action])


def _resources(statement: dict[str, Any]) -> list[Any]:
    resource = statement["Resource"]
    return resource if isinstance(resource, list) else [resource]


def _filled(value: Any) -> Any:
    """References replaced by placeholder strings, as a deployment replaces them by names and ARNs."""
    if isinstance(value, dict):
        if set(value) in ({"Ref"}, {"Fn::GetAtt"}):
            return f"<{json.dumps(value)}>"
        return {k: _filled(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_filled(v) for v in value]
    return value


def test_it_runs_on_the_configured_schedule_with_a_dead_letter_sink(dev: Synthesized) -> None:
    alias_id = _logical_id(dev, dev.stack.reconciler.function.alias)
    [rule] = [
        r["Properties"]
        for r in dev.of_type("AWS::Events::Rule").values()
        if any(t["Arn"] == {"Ref": alias_id} for t in r["Properties"].get("Targets", []))
    ]
    minutes = dev.stack.config.reconciler.schedule_minutes
    assert rule["ScheduleExpression"] == f"rate({minutes} minute{'s' if minutes > 1 else ''})"
    assert rule["State"] == "ENABLED"
    sink = _logical_id(dev, dev.stack.reconciler.failures.queue)
    assert rule["Targets"][0]["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [sink, "Arn"]}
    # A failed run is not retried by Lambda: the next scheduled run is the retry.
    [invoke_config] = [
        c["Properties"]
        for c in dev.of_type("AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": _function(dev)[0]}
    ]
    assert invoke_config["MaximumRetryAttempts"] == 0
    assert invoke_config["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": [sink, "Arn"]}


def test_it_may_touch_only_the_consumers_mappings_the_controller_and_the_circuit_table(
    dev: Synthesized,
) -> None:
    statements = _statements(dev)
    granted = set().union(*(_actions(s) for s in statements))
    assert granted == {
        "lambda:GetEventSourceMapping",
        "lambda:UpdateEventSourceMapping",
        "states:ListExecutions",
        "states:StartExecution",
        "states:DescribeExecution",
        "dynamodb:GetItem",
        "dynamodb:DeleteItem",
        "sqs:SendMessage",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    } | ({"sqs:GetQueueAttributes", "sqs:GetQueueUrl"} & granted)
    controller = _logical_id(dev, dev.stack.workflows.controller)
    table = _logical_id(dev, dev.stack.circuits.table)
    mappings = {dev.stack.resolve(m.mapping_id)["Ref"] for m in dev.stack.workflows.pausable.values()}
    assert len(mappings) == len(dev.stack.consumers) + 1  # and the fulfilment starter
    for statement in statements:
        actions, text = _actions(statement), json.dumps(_resources(statement))
        if actions & {"lambda:GetEventSourceMapping", "lambda:UpdateEventSourceMapping"}:
            # minimizePolicies may merge the consumers' statements: each resource is one mapping.
            for resource in _resources(statement):
                one = json.dumps(resource)
                assert sum(m in one for m in mappings) == 1 and "*" not in one, one
        if actions & {"states:ListExecutions", "states:StartExecution"}:
            assert _resources(statement) == [{"Ref": controller}]
        if "states:DescribeExecution" in actions:
            assert f'"Ref": "{controller}"' in text and ":execution:" in text
        if actions & {"dynamodb:GetItem", "dynamodb:DeleteItem"}:
            assert _resources(statement) == [{"Fn::GetAtt": [table, "Arn"]}]
    for mapping in mappings:
        assert any(mapping in json.dumps(_resources(s)) for s in statements), mapping


def test_the_control_document_names_every_consumer_and_the_controllers_own_inputs(dev: Synthesized) -> None:
    _, props = _function(dev)
    raw = props["Environment"]["Variables"][CONTROL_ENV]
    rendered = json.dumps(raw)
    for consumer in dev.stack.consumers.values():
        assert dev.stack.resolve(consumer.event_source_mapping_id)["Ref"] in rendered
    outputs = dev.template.to_json()["Outputs"]
    assert outputs[CONTROL_OUTPUT]["Value"] == raw
    # With the references filled in, it parses with the handler's own model.
    control = ConsumerControl.model_validate(_filled(dev.stack.resolve(dev.stack.reconciler.control)))
    assert set(control.consumers) == set(dev.stack.config.consumers) | {STARTER_NAME}
    assert set(control.circuits) == {"partner"}
    assert not control.paused_by_controller("notifications")
    # The starter waits with the orders consumer: its executions would charge into the open circuit.
    assert control.paused_by_controller(STARTER_NAME)
    assert control.consumers[STARTER_NAME].circuit == control.consumers["orders"].circuit
    # The very inputs the controller's rules send (built once in stacks/workflows.py).
    assert dev.stack.reconciler.control["circuits"] is dev.stack.workflows.controller_inputs


def test_each_consumer_has_a_paused_alarm_on_the_metric_the_handler_emits(dev: Synthesized) -> None:
    topic_id = next(iter(dev.of_type("AWS::SNS::Topic")))
    minutes = dev.stack.config.reconciler.paused_alarm_minutes
    for name in [*dev.stack.config.consumers, STARTER_NAME]:
        alarm_id = _logical_id(dev, dev.stack.reconciler.paused_alarms[name])
        props = dev.resources[alarm_id]["Properties"]
        assert props["MetricName"] == METRIC_PAUSED_SECONDS
        assert props["Namespace"] == dev.stack.config.service_name
        assert {d["Name"]: d["Value"] for d in props["Dimensions"]} == {
            "service": dev.stack.config.service_name,
            DIMENSION_CONSUMER: name,
        }
        assert props["Statistic"] == "Maximum"
        assert props["Threshold"] == minutes * 60
        assert props["ComparisonOperator"] == "GreaterThanThreshold"
        assert props["TreatMissingData"] == "missing"
        assert {"Ref": topic_id} in props["AlarmActions"]
