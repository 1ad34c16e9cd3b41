"""The synthesized template deploys on the emulator, and what it creates is what the template says.

These tests are also the verification of every deploy-time workaround in localcloud/moto_patches/
(each workaround's docstring points here).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from bench.cost import handler_environments, import_cost
from localcloud.deploy import DeployedStack
from localcloud.lambda_runtime import FunctionConfig, SqsEventSource
from localcloud.moto_patches.stack_state_machines import register_stack_state_machines_for_execution
from tests.waiting import wait_until

# Types moto's CloudFormation skips. The local cloud does not need them to run the data path; a new
# type appearing here must be looked at (is the data path missing something?) before it is added.
KNOWN_NOT_EMULATED = {
    "AWS::SQS::QueuePolicy",
    # The domain bus's Deny for every publisher but the API: the local cloud evaluates no IAM (the rule
    # is checked on the template, tests/infra/test_event_fanout.py).
    "AWS::Events::EventBusPolicy",
    "AWS::SNS::TopicPolicy",
    "AWS::S3::BucketPolicy",
    "AWS::Logs::QueryDefinition",
    "AWS::FIS::ExperimentTemplate",
    "AWS::ApiGateway::Account",
    "AWS::ApiGateway::Stage",
    "AWS::ApiGateway::Model",
    "AWS::ApiGateway::RequestValidator",
    "AWS::ApiGateway::GatewayResponse",
    # The reconciler's async-invoke settings (no retries, on-failure queue): the local cloud runs no
    # schedules, so nothing invokes it asynchronously there.
    "AWS::Lambda::EventInvokeConfig",
}
# Types whose Ref the rest of the local cloud reads: each must have a physical id.
NEEDS_PHYSICAL_ID = {
    "AWS::SQS::Queue",
    "AWS::DynamoDB::GlobalTable",
    "AWS::Lambda::Function",
    "AWS::Lambda::Alias",
    "AWS::Lambda::EventSourceMapping",
    "AWS::SecretsManager::Secret",
    "AWS::SSM::Parameter",
    "AWS::Events::EventBus",
    "AWS::Events::Archive",
    "AWS::Events::Rule",
    "AWS::CloudWatch::Alarm",
    "AWS::StepFunctions::StateMachine",
}


def of_type(deployed: DeployedStack, resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in deployed.template["Resources"].items() if v["Type"] == resource_type}


def test_every_resource_is_created_or_knowingly_skipped(deployed: DeployedStack) -> None:
    stack = deployed.emulator.client("cloudformation").describe_stacks(StackName=deployed.stack_name)
    assert stack["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    assert set(deployed.not_emulated.values()) <= KNOWN_NOT_EMULATED
    for logical_id, resource in deployed.template["Resources"].items():
        if resource["Type"] == "AWS::CDK::Metadata" or logical_id in deployed.not_emulated:
            continue
        assert logical_id in deployed.resources, f"{logical_id} ({resource['Type']}) was not created"
        if resource["Type"] in NEEDS_PHYSICAL_ID:
            assert deployed.physical_id(logical_id), f"{logical_id} has no physical id"


def test_function_environments_are_the_templates_with_tokens_resolved(deployed: DeployedStack) -> None:
    """moto's CloudFormation resolved every Ref/GetAtt; an independent resolver gets the same values."""
    functions = of_type(deployed, "AWS::Lambda::Function")
    assert functions
    for logical_id, resource in functions.items():
        config = FunctionConfig.read(deployed.emulator, deployed.physical_id(logical_id))
        template = resource["Properties"]
        expected = {
            k: str(deployed.resolve(v))
            for k, v in template.get("Environment", {}).get("Variables", {}).items()
        }
        assert dict(config.environment) == expected, logical_id
        assert (config.handler, config.timeout_s, config.memory_mb) == (
            template["Handler"],
            float(template.get("Timeout", 3)),
            int(template.get("MemorySize", 128)),
        )
        assert config.reserved_concurrency == template.get("ReservedConcurrentExecutions")
        assert config.alias_arn is not None and config.alias_arn.endswith(":live")


def test_event_source_mappings_honour_the_template(deployed: DeployedStack) -> None:
    mappings = of_type(deployed, "AWS::Lambda::EventSourceMapping")
    assert mappings
    for logical_id, resource in mappings.items():
        template = resource["Properties"]
        source = SqsEventSource.read(deployed.emulator, deployed.physical_id(logical_id))
        assert source.queue_arn == deployed.resolve(template["EventSourceArn"])
        assert source.batch_size == template.get("BatchSize", 10)
        assert source.batching_window_s == template.get("MaximumBatchingWindowInSeconds", 0)
        assert source.max_concurrency == (template.get("ScalingConfig") or {}).get("MaximumConcurrency")
        assert source.report_batch_item_failures == (
            "ReportBatchItemFailures" in template["FunctionResponseTypes"]
        )
        alias = deployed.resolve(template["FunctionName"])  # "<function>:live"
        assert source.function_name == alias.split(":")[0]
        queue = next(
            q
            for k, q in of_type(deployed, "AWS::SQS::Queue").items()
            if deployed.get_att(k, "Arn") == source.queue_arn
        )["Properties"]
        assert source.visibility_timeout_s == queue["VisibilityTimeout"]
        assert source.max_receive_count == queue["RedrivePolicy"]["maxReceiveCount"]


def test_a_mapped_queue_accepts_messages_and_leaves_them_to_the_poller(deployed: DeployedStack) -> None:
    """moto would push to the function (Docker) inside SendMessage; the handoff workaround stops that."""
    mapping = next(iter(of_type(deployed, "AWS::Lambda::EventSourceMapping")))
    source = SqsEventSource.read(deployed.emulator, deployed.physical_id(mapping))
    lambda_ = deployed.emulator.client("lambda")
    assert lambda_.get_event_source_mapping(UUID=source.uuid)["State"] == "Enabled"
    sqs = deployed.emulator.client("sqs")
    sqs.send_message(QueueUrl=source.queue_url, MessageBody="{}")
    received = sqs.receive_message(QueueUrl=source.queue_url, AttributeNames=["All"])["Messages"]
    assert [m["Attributes"]["ApproximateReceiveCount"] for m in received] == ["1"]
    sqs.delete_message(QueueUrl=source.queue_url, ReceiptHandle=received[0]["ReceiptHandle"])


def test_refs_to_buses_and_archives_are_their_names(deployed: DeployedStack) -> None:
    names = {b["Name"] for b in deployed.emulator.client("events").list_event_buses()["EventBuses"]}
    for logical_id in of_type(deployed, "AWS::Events::EventBus"):
        assert deployed.physical_id(logical_id) in names
    assert deployed.outputs["EventBusName"] in names
    archives = {a["ArchiveName"] for a in deployed.emulator.client("events").list_archives()["Archives"]}
    for logical_id in of_type(deployed, "AWS::Events::Archive"):
        assert deployed.physical_id(logical_id) in archives
        assert len(deployed.physical_id(logical_id)) <= 48


def test_secrets_tables_and_alarms_exist(deployed: DeployedStack) -> None:
    secrets = deployed.emulator.client("secretsmanager")
    for logical_id in of_type(deployed, "AWS::SecretsManager::Secret"):
        assert secrets.get_secret_value(SecretId=deployed.physical_id(logical_id))["SecretString"]
    dynamodb = deployed.emulator.client("dynamodb")
    for logical_id, resource in of_type(deployed, "AWS::DynamoDB::GlobalTable").items():
        name = deployed.physical_id(logical_id)
        table = dynamodb.describe_table(TableName=name)["Table"]
        assert table["KeySchema"] == resource["Properties"]["KeySchema"]
        ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        assert ttl.get("AttributeName") == resource["Properties"]["TimeToLiveSpecification"]["AttributeName"]
    alarms = deployed.emulator.client("cloudwatch").describe_alarms(MaxRecords=100)
    described = {a["AlarmName"] for a in alarms["MetricAlarms"] + alarms["CompositeAlarms"]}
    while alarms.get("NextToken"):
        alarms = deployed.emulator.client("cloudwatch").describe_alarms(
            MaxRecords=100, NextToken=alarms["NextToken"]
        )
        described |= {a["AlarmName"] for a in alarms["MetricAlarms"] + alarms["CompositeAlarms"]}
    templated = set(of_type(deployed, "AWS::CloudWatch::Alarm")) | set(
        of_type(deployed, "AWS::CloudWatch::CompositeAlarm")
    )
    assert {deployed.physical_id(k) for k in templated} <= described


def test_public_ssm_parameters_the_template_resolves_exist(deployed: DeployedStack) -> None:
    ssm = deployed.emulator.client("ssm")
    for parameter in deployed.template.get("Parameters", {}).values():
        if parameter["Type"].startswith("AWS::SSM::Parameter::Value"):
            assert ssm.get_parameter(Name=parameter["Default"])["Parameter"]["Value"]


# A handler's init against the import of the libraries it uses: the benchmark publishes every handler's
# wall-time ratio against the 1.3x target (docs/benchmarks.md). This guard is loose on purpose (CPU time,
# one interleaved measurement, a regression to 3x fails), so a busy machine cannot change its verdict
# while a handler that builds its clients twice or imports a synth-only module still fails it.
INIT_REGRESSION_RATIO = 3.0


@pytest.mark.parametrize("module", ["lambdas.order_consumer.handler", "lambdas.order_status.handler"])
def test_init_costs_less_than_three_times_the_libraries_it_imports(
    deployed: DeployedStack, module: str
) -> None:
    measured = import_cost(module, handler_environments(deployed)[module], repeat=1)
    assert measured.cpu_ratio < INIT_REGRESSION_RATIO, (
        f"{module}: init {measured.init_cpu_ms:.0f} ms CPU vs {measured.floor_cpu_ms:.0f} ms for its libraries "
        f"alone ({measured.cpu_ratio:.1f}x); the floor imports:\n" + "\n".join(measured.libraries)
    )


def wait_for_executions(
    deployed: DeployedStack, arn: str, count: int, timeout_s: float = 60
) -> list[dict[str, Any]]:
    sfn = deployed.emulator.client("stepfunctions")
    deadline = time.monotonic() + timeout_s
    while True:
        executions = sfn.list_executions(stateMachineArn=arn)["executions"]
        if len(executions) >= count or time.monotonic() > deadline:
            return executions
        time.sleep(0.1)


def test_state_machines_of_the_stack_can_be_executed(deployed: DeployedStack) -> None:
    machines = of_type(deployed, "AWS::StepFunctions::StateMachine")
    if not machines:
        pytest.skip("the stack has no state machines")
    sfn = deployed.emulator.client("stepfunctions")
    for logical_id in machines:
        arn = deployed.physical_id(logical_id)
        described = sfn.describe_state_machine(stateMachineArn=arn)
        assert json.loads(described["definition"])["States"]
        sfn.start_execution(stateMachineArn=arn, input="{}")
        assert wait_for_executions(deployed, arn, 1)


def test_rule_matches_start_state_machine_targets_with_the_targets_input(deployed: DeployedStack) -> None:
    events = deployed.emulator.client("events")
    found = 0
    for logical_id, resource in of_type(deployed, "AWS::Events::Rule").items():
        targets = [
            t
            for t in resource["Properties"].get("Targets", [])
            if "states" in json.dumps(t["Arn"])
            or deployed.logical_id_of(str(deployed.resolve(t["Arn"])))
            in of_type(deployed, "AWS::StepFunctions::StateMachine")
        ]
        pattern = resource["Properties"].get("EventPattern", {})
        if not targets or "source" not in pattern or "resources" in pattern:
            continue
        found += 1
        arn = str(deployed.resolve(targets[0]["Arn"]))
        before = len(wait_for_executions(deployed, arn, 0, timeout_s=0))
        detail = {k: v[0] for k, v in pattern.get("detail", {}).items() if isinstance(v, list)}
        bus = deployed.resolve(resource["Properties"].get("EventBusName", "default"))
        result = events.put_events(
            Entries=[
                {
                    "EventBusName": bus,
                    "Source": pattern["source"][0],
                    "DetailType": pattern["detail-type"][0],
                    "Detail": json.dumps(detail),
                }
            ]
        )
        assert result["FailedEntryCount"] == 0
        executions = wait_for_executions(deployed, arn, before + 1)
        assert len(executions) == before + 1, logical_id
        newest = max(executions, key=lambda e: e["startDate"])
        execution = deployed.emulator.client("stepfunctions").describe_execution(
            executionArn=newest["executionArn"]
        )
        assert json.loads(execution["input"]) == json.loads(deployed.resolve(targets[0]["Input"]))
    if not found:
        pytest.skip("no rule of the stack targets a state machine")


SUBSTITUTIONS_TEMPLATE = {
    "Resources": {
        "Role": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "states.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ]
                }
            },
        },
        "Machine": {
            "Type": "AWS::StepFunctions::StateMachine",
            "Properties": {
                "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                "DefinitionString": json.dumps(
                    {
                        "StartAt": "Say",
                        "States": {"Say": {"Type": "Pass", "Result": "${Greeting}", "End": True}},
                    }
                ),
                "DefinitionSubstitutions": {"Greeting": "hello from a substitution"},
            },
        },
    }
}


def test_definition_substitutions_and_execution_of_a_cloudformation_state_machine(
    deployed: DeployedStack,
) -> None:
    emulator = deployed.emulator
    cloudformation = emulator.client("cloudformation")
    cloudformation.create_stack(StackName="substitutions", TemplateBody=json.dumps(SUBSTITUTIONS_TEMPLATE))
    resources = cloudformation.list_stack_resources(StackName="substitutions")["StackResourceSummaries"]
    arn = next(r["PhysicalResourceId"] for r in resources if r["LogicalResourceId"] == "Machine")
    register_stack_state_machines_for_execution(emulator.account_id, emulator.region)
    sfn = emulator.client("stepfunctions")
    execution = sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
    described = wait_until(
        lambda: (d := sfn.describe_execution(executionArn=execution))["status"] != "RUNNING" and d,
        what="the execution finished",
    )
    assert described["status"] == "SUCCEEDED"
    assert "hello from a substitution" in described["output"]
    definition = json.loads(sfn.describe_state_machine(stateMachineArn=arn)["definition"])
    assert definition["States"]["Say"]["Result"] == "hello from a substitution"
