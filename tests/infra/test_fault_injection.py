"""Fault-injection experiments: bounded, tag-targeted, stopped by harm alarms, never in production."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from stacks.config import ConfigError
from stacks.fault_injection import EXTENSION_PARAMETER, TARGET_TAG
from tests.conftest import cdk_context
from tests.infra.conftest import Synthesized

LAMBDA_ACTIONS = {
    "aws:lambda:invocation-add-delay",
    "aws:lambda:invocation-error",
    "aws:lambda:invocation-http-integration-response",
}


def _templates(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in synthesized.of_type("AWS::FIS::ExperimentTemplate").items()}


def test_production_has_no_experiments_and_cannot_enable_them(prod: Synthesized) -> None:
    assert _templates(prod) == {}
    assert EXTENSION_PARAMETER not in json.dumps(prod.template.to_json())
    from stacks.application import build_app

    context = cdk_context(stage="prod")
    context["stages"]["prod"]["fault_injection"] = {"enabled": True}
    with pytest.raises(ConfigError, match=r"fault_injection\.enabled"):
        build_app(context)


def test_every_experiment_is_bounded_tag_targeted_and_stopped_by_harm_alarms(dev: Synthesized) -> None:
    templates = _templates(dev)
    assert {p["Actions"]["inject"]["ActionId"] for p in templates.values()} == LAMBDA_ACTIONS
    settings = dev.stack.config.fault_injection
    harm = {dev.stack.get_logical_id(a.node.default_child) for a in dev.stack.monitoring.harm_alarms}
    assert harm
    for name, props in templates.items():
        stops = props["StopConditions"]
        assert stops and all(s["Source"] == "aws:cloudwatch:alarm" for s in stops), name
        assert {s["Value"]["Fn::GetAtt"][0] for s in stops} == harm
        (target,) = props["Targets"].values()
        assert target["ResourceType"] == "aws:lambda:function"
        assert set(target["ResourceTags"]) == {TARGET_TAG}
        parameters = props["Actions"]["inject"]["Parameters"]
        assert parameters["duration"] == f"PT{settings.duration_minutes}M"
        assert parameters["invocationPercentage"] == str(settings.invocation_percentage)
        assert "LogConfiguration" in props


def test_dependency_experiment_answers_503_and_consumer_ones_hit_the_consumers(dev: Synthesized) -> None:
    templates = _templates(dev)
    by_action = {p["Actions"]["inject"]["ActionId"]: p for p in templates.values()}
    http = by_action["aws:lambda:invocation-http-integration-response"]
    assert http["Actions"]["inject"]["Parameters"]["statusCode"] == "503"
    assert http["Targets"]["Functions"]["ResourceTags"][TARGET_TAG].endswith("-dependency")
    for action in ("aws:lambda:invocation-add-delay", "aws:lambda:invocation-error"):
        assert by_action[action]["Targets"]["Functions"]["ResourceTags"][TARGET_TAG].endswith("-consumer")


def test_targeted_functions_carry_the_extension_its_settings_and_the_tag(dev: Synthesized) -> None:
    tagged = {
        logical_id: function["Properties"]
        for logical_id, function in dev.of_type("AWS::Lambda::Function").items()
        if any(t["Key"] == TARGET_TAG for t in function["Properties"].get("Tags", []))
    }
    expected = {
        dev.stack.get_logical_id(c.handler.function.node.default_child) for c in dev.stack.consumers.values()
    }
    expected |= {
        dev.stack.get_logical_id(d.demo.function.node.default_child)
        for d in dev.stack.downstream.values()
        if d.demo
    }
    assert set(tagged) == expected
    for props in tagged.values():
        env = props["Environment"]["Variables"]
        assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/aws-fis/bootstrap"
        assert re.search(r"/FisConfigs/", json.dumps(env["AWS_FIS_CONFIGURATION_LOCATION"]))
        assert len(props["Layers"]) == 2


def test_the_experiment_role_writes_only_configurations_and_reads_only_targets(dev: Synthesized) -> None:
    role_id = dev.stack.get_logical_id(dev.stack.fault_injection.role.node.default_child)
    statements = [
        s
        for p in dev.of_type("AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if statement["Resource"] == "*":
            assert set(actions) <= {"tag:GetResources", "logs:CreateLogDelivery", "logs:DescribeLogGroups",
                                    "logs:DescribeResourcePolicies", "logs:PutResourcePolicy"}  # fmt: skip
        elif "s3:PutObject" in actions:
            assert "FisConfigs/*" in json.dumps(statement["Resource"])
        elif actions == ["lambda:GetFunction"]:
            assert len(statement["Resource"]) == len(dev.stack.fault_injection.targets["consumer"]) + len(
                dev.stack.fault_injection.targets["dependency"]
            )
