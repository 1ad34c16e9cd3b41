"""Synthesize once per test session: jsii start-up and synthesis take seconds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, assertions

from stacks.application import build_app
from stacks.service_stack import ResilientServiceStack
from tests.conftest import cdk_context


@dataclass
class Synthesized:
    app: App
    stack: ResilientServiceStack
    template: assertions.Template
    outdir: Path

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.template.to_json()["Resources"]

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == resource_type}

    def statements_by_role(self) -> dict[str, list[dict[str, Any]]]:
        """Role logical id -> every IAM policy statement attached to it."""
        by_role: dict[str, list[dict[str, Any]]] = {}
        for policy in self.of_type("AWS::IAM::Policy").values():
            for role in policy["Properties"]["Roles"]:
                by_role.setdefault(role["Ref"], []).extend(
                    policy["Properties"]["PolicyDocument"]["Statement"]
                )
        return by_role

    def dead_letter_queue_ids(self) -> set[str]:
        """Logical ids of every queue something dead-letters into (SQS, SNS, EventBridge, Lambda)."""
        arns: list[Any] = []
        for resource in self.resources.values():
            props = resource.get("Properties", {})
            if resource["Type"] in ("AWS::SQS::Queue", "AWS::SNS::Subscription") and "RedrivePolicy" in props:
                arns.append(props["RedrivePolicy"]["deadLetterTargetArn"])
            elif resource["Type"] == "AWS::Events::Rule":
                arns += [
                    t["DeadLetterConfig"]["Arn"] for t in props.get("Targets", []) if "DeadLetterConfig" in t
                ]
            elif resource["Type"] == "AWS::Lambda::EventInvokeConfig":
                on_failure = props.get("DestinationConfig", {}).get("OnFailure", {})
                if "Destination" in on_failure:
                    arns.append(on_failure["Destination"])
            elif resource["Type"] == "AWS::StepFunctions::StateMachine":
                # Failure sinks that a state machine's Catch writes to.
                substitutions = props.get("DefinitionSubstitutions", {})
                arns += [
                    {"Fn::GetAtt": [url["Ref"], "Arn"]}
                    for key, url in substitutions.items()
                    if key.endswith("FailureQueueUrl") and isinstance(url, dict) and "Ref" in url
                ]
        return {arn["Fn::GetAtt"][0] for arn in arns if isinstance(arn, dict) and "Fn::GetAtt" in arn}


def synthesize(tmp_path_factory: pytest.TempPathFactory, **context: Any) -> Synthesized:
    outdir = tmp_path_factory.mktemp("cdk.out")
    app, stack = build_app(cdk_context(**context), outdir=str(outdir))
    app.synth()  # runs the cdk-nag packs too: a finding raises here
    return Synthesized(app, stack, assertions.Template.from_stack(stack), outdir)


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(tmp_path_factory, stage="dev")


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(tmp_path_factory, stage="prod")
