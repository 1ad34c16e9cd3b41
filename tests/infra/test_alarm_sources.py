"""Every alarm of the template reads a metric something publishes: a handler's EMF metric (found in the
code under lambdas/) or a service metric the local cloud records or knowingly cannot observe.

A misspelt metric name, a dimension the code never attaches or a dimension pointing at the wrong
resource would keep an alarm silent through a real outage; here it fails a test.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcloud.alarms import AlarmDefinition, MetricStat, Query, read_template
from localcloud.metrics import LOCAL_SERVICE_METRICS, NOT_OBSERVABLE, MetricKey
from stacks.config import API_ROUTES
from tests.conftest import PROJECT_ROOT, cdk_context
from tests.infra.conftest import Synthesized

SERVICE = cdk_context()["service"]["service_name"]
# Calls that publish one EMF metric: Powertools' own, and the project's wrappers around single_metric.
EMITTING_CALLS = {"add_metric", "single_metric", "_count", "_metric"}
# What a service dimension must point at: (resource type, Fn::GetAtt attribute or None for a Ref).
# API Gateway's method metrics: a route's method and resource path, and the stage (named after the config's).
API_METHOD_DIMENSIONS = {
    "Method": {route.split(" ", 1)[0] for route in API_ROUTES},
    "Resource": {route.split(" ", 1)[1] for route in API_ROUTES},
    "Stage": {"dev", "prod"},
}
DIMENSION_TARGETS = {
    "QueueName": ("AWS::SQS::Queue", "QueueName"),
    "FunctionName": ("AWS::Lambda::Function", None),
    "StateMachineArn": ("AWS::StepFunctions::StateMachine", None),
}


@dataclass
class EmittedMetrics:
    names: set[str] = field(default_factory=set)
    dimensions: set[str] = field(default_factory=set)


def _constants(trees: list[ast.Module]) -> dict[str, str]:
    """Module-level string constants of the function code (``METRIC_X: Final = "..."``, log_fields)."""
    constants = {}
    for tree in trees:
        for node in tree.body:
            target = node.target if isinstance(node, ast.AnnAssign) else None
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
            value = getattr(node, "value", None)
            if (
                isinstance(target, ast.Name)
                and isinstance(value, ast.Constant)
                and isinstance(value.value, str)
            ):
                constants[target.id] = value.value
    return constants


def _string(node: ast.AST | None, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    if isinstance(node, ast.Attribute):  # lf.DEPENDENCY
        return constants.get(node.attr)
    return None


def _dict_keys(node: ast.AST, constants: dict[str, str]) -> Iterator[str]:
    for child in ast.walk(node):
        if isinstance(child, ast.Dict):
            for key in child.keys:
                name = _string(key, constants)
                if name is not None:
                    yield name


def emitted_metrics(root: Path = PROJECT_ROOT / "lambdas") -> EmittedMetrics:
    """Metric and dimension names the function code publishes, read from its source."""
    trees = [ast.parse(path.read_text()) for path in sorted(root.rglob("*.py"))]
    constants = _constants(trees)
    emitted = EmittedMetrics()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id in ("dims", "dimensions") for t in node.targets
            ):
                emitted.dimensions.update(_dict_keys(node.value, constants))
            if not isinstance(node, ast.Call):
                continue
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            keywords = {k.arg: k.value for k in node.keywords}
            if called == "add_dimension":
                name = _string(keywords.get("name"), constants)
                emitted.dimensions.update([name] if name else [])
            if called not in EMITTING_CALLS:
                continue
            name = _string(keywords.get("name", node.args[0] if node.args else None), constants)
            if name is not None:
                emitted.names.add(name)
            for argument in [*node.args, *keywords.values()]:
                emitted.dimensions.update(_dict_keys(argument, constants))
    return emitted


def source_problems(
    alarm: AlarmDefinition, emitted: EmittedMetrics, resources: dict[str, dict[str, Any]]
) -> list[str]:
    """Why an alarm's metrics are not ones anything publishes (empty when they all are)."""
    problems = []
    for metric in alarm.metrics:
        key = metric.key
        where = f"{alarm.name}: {key}"
        pair = (key.namespace, key.name)
        if key.namespace.startswith("AWS/"):
            if pair in NOT_OBSERVABLE:
                continue
            if pair not in LOCAL_SERVICE_METRICS:
                problems.append(
                    f"{where}: a service metric the local cloud neither records nor lists as unobservable"
                )
                continue
            if set(key.dimension_names) not in [set(names) for names in LOCAL_SERVICE_METRICS[pair]]:
                problems.append(f"{where}: published with dimensions {LOCAL_SERVICE_METRICS[pair]}")
            for name, value in key.dimensions:
                problems += _target_problems(where, name, value, resources)
            continue
        if key.namespace != SERVICE:
            problems.append(f"{where}: the functions publish under {SERVICE}")
        if key.name not in emitted.names:
            problems.append(f"{where}: no function code publishes {key.name}")
        unknown = set(key.dimension_names) - emitted.dimensions - {"service"}  # Powertools adds service
        if unknown:
            problems.append(f"{where}: no function code attaches {sorted(unknown)}")
        if dict(key.dimensions).get("service", SERVICE) != SERVICE:
            problems.append(f"{where}: Powertools sets service={SERVICE}")
    return problems


def _target_problems(where: str, name: str, value: str, resources: dict[str, dict[str, Any]]) -> list[str]:
    if name == "ApiName":
        names = {
            str(r["Properties"].get("Name"))
            for r in resources.values()
            if r["Type"] == "AWS::ApiGateway::RestApi"
        }
        return [] if value in names else [f"{where}: no REST API is named {value}"]
    if name in API_METHOD_DIMENSIONS:
        known = API_METHOD_DIMENSIONS[name]
        return [] if value in known else [f"{where}: {name} {value!r} is none of the API's {sorted(known)}"]
    if name not in DIMENSION_TARGETS:
        return []
    resource_type, attribute = DIMENSION_TARGETS[name]
    logical_id, _, got = value.partition(".")
    if resources.get(logical_id, {}).get("Type") != resource_type or (got or None) != attribute:
        return [
            f"{where}: {name} should be {'Fn::GetAtt ' + attribute if attribute else 'Ref'} of a {resource_type}"
        ]
    return []


def test_every_alarm_reads_a_metric_something_publishes(dev: Synthesized) -> None:
    template = dev.template.to_json()
    alarms = read_template(template)
    assert alarms.alarms and alarms.composites and not alarms.unreadable
    emitted = emitted_metrics()
    problems = [p for alarm in alarms.alarms for p in source_problems(alarm, emitted, template["Resources"])]
    assert not problems, "\n".join(problems)


def test_an_alarm_on_a_metric_nothing_publishes_is_caught(dev: Synthesized) -> None:
    resources = dev.template.to_json()["Resources"]
    emitted = emitted_metrics()

    def alarm_on(key: MetricKey) -> AlarmDefinition:
        return AlarmDefinition(
            "MonitoringProbeAAAAAAAA",
            (Query("m", MetricStat(key, "Sum", 60)),),
            0,
            "GreaterThanThreshold",
            1,
            1,
            "notBreaching",
        )

    queue = next(k for k, r in resources.items() if r["Type"] == "AWS::SQS::Queue")
    function = next(k for k, r in resources.items() if r["Type"] == "AWS::Lambda::Function")
    misspelt = MetricKey.of(SERVICE, "UpstreamError", {"service": SERVICE, "dependency": "partner"})
    wrong_dimension = MetricKey.of(SERVICE, "UpstreamErrors", {"service": SERVICE, "partner": "partner"})
    wrong_resource = MetricKey.of(
        "AWS/SQS", "ApproximateAgeOfOldestMessage", {"QueueName": f"{function}.QueueName"}
    )
    unknown_service = MetricKey.of("AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds", {"StreamName": "s"})
    fine = MetricKey.of("AWS/SQS", "ApproximateAgeOfOldestMessage", {"QueueName": f"{queue}.QueueName"})
    for key in (misspelt, wrong_dimension, wrong_resource, unknown_service):
        assert source_problems(alarm_on(key), emitted, resources), key
    assert source_problems(alarm_on(fine), emitted, resources) == []
    assert "UpstreamLogicalCalls" in emitted.names and "status_class" in emitted.dimensions
