"""Template-wide rules for every EventBridge rule and target, so one added later cannot skip them."""

from __future__ import annotations

import re
from typing import Any

import pytest

from lambdas.contracts.events import DETAIL_TYPES, SIDE_EFFECTS_TAG
from stacks.application import build_app
from tests.conftest import cdk_context
from tests.infra.conftest import Synthesized

EVENTS_PRINCIPAL = {"Service": "events.amazonaws.com"}


def _rules(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    rules = synthesized.of_type("AWS::Events::Rule")
    assert rules, "no EventBridge rule in the template"
    return rules


def _targets(synthesized: Synthesized) -> list[tuple[str, dict[str, Any]]]:
    return [
        (rule_id, t) for rule_id, rule in _rules(synthesized).items() for t in rule["Properties"]["Targets"]
    ]


def _logical_id(arn: Any) -> str:
    assert isinstance(arn, dict) and ("Fn::GetAtt" in arn or "Ref" in arn), (
        f"{arn} does not point at a resource of this stack"
    )
    return str(arn["Fn::GetAtt"][0] if "Fn::GetAtt" in arn else arn["Ref"])


def _service_bus_rules(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    """The fan-out rules: those on the domain bus (other buses carry control-plane events)."""
    bus_id = synthesized.stack.get_logical_id(synthesized.stack.fanout.bus.node.default_child)
    rules = {
        k: v for k, v in _rules(synthesized).items() if v["Properties"].get("EventBusName") == {"Ref": bus_id}
    }
    assert len(rules) == len(synthesized.stack.config.events.subscriptions)
    return rules


def _policy_statements(synthesized: Synthesized, queue_id: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in synthesized.of_type("AWS::SQS::QueuePolicy").values()
        if {"Ref": queue_id} in policy["Properties"]["Queues"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _assert_only_the_rule_may_send(synthesized: Synthesized, queue_id: str, rule_id: str) -> None:
    allows = [s for s in _policy_statements(synthesized, queue_id) if s["Effect"] == "Allow"]
    assert allows, f"{queue_id}: EventBridge has no permission to send"
    for statement in allows:
        assert statement["Principal"] == EVENTS_PRINCIPAL, f"{queue_id}: {statement['Principal']} may send"
        assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]}}}, (
            f"{queue_id}: sending is not scoped to {rule_id}"
        )
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert "sqs:SendMessage" in actions and not any("*" in a for a in actions)


# -- every rule, every target -----------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_every_target_has_a_dlq_and_the_configured_retry_policy(
    stage: str, request: pytest.FixtureRequest
) -> None:
    synthesized: Synthesized = request.getfixturevalue(stage)
    settings = synthesized.stack.config.events
    targets = _targets(synthesized)
    assert targets
    for rule_id, target in targets:
        assert "DeadLetterConfig" in target, f"{rule_id}/{target['Id']} has no DeadLetterConfig"
        dlq = _logical_id(target["DeadLetterConfig"]["Arn"])
        assert synthesized.resources[dlq]["Type"] == "AWS::SQS::Queue"
        assert target["RetryPolicy"] == {
            "MaximumEventAgeInSeconds": settings.target_max_event_age_seconds,
            "MaximumRetryAttempts": settings.target_retry_attempts,
        }, f"{rule_id}/{target['Id']}"


def test_every_dlq_belongs_to_one_rule_and_only_that_rule_may_send_to_it(dev: Synthesized) -> None:
    owners: dict[str, str] = {}
    for rule_id, target in _targets(dev):
        dlq = _logical_id(target["DeadLetterConfig"]["Arn"])
        assert owners.setdefault(dlq, rule_id) == rule_id, f"{dlq} is shared by {owners[dlq]} and {rule_id}"
        _assert_only_the_rule_may_send(dev, dlq, rule_id)


def test_every_queue_target_accepts_only_its_rule_and_redrives_to_that_rule_dlq(dev: Synthesized) -> None:
    for rule_id, target in _targets(dev):
        queue_id = _logical_id(target["Arn"])
        queue = dev.resources[queue_id]
        if queue["Type"] != "AWS::SQS::Queue":
            continue
        _assert_only_the_rule_may_send(dev, queue_id, rule_id)
        # Processing failures (the subscriber's) reach the same DLQ through the queue's redrive
        # policy, so one SQS redrive recovers both kinds; a DLQ that only EventBridge fed could
        # not be redriven with StartMessageMoveTask.
        redrive = queue["Properties"]["RedrivePolicy"]
        assert redrive["deadLetterTargetArn"] == target["DeadLetterConfig"]["Arn"]
        assert queue["Properties"].get("SqsManagedSseEnabled") is True, "SSE-SQS, not a KMS key"


def test_every_rule_matches_the_ingestion_source_on_the_service_bus(dev: Synthesized) -> None:
    bus_id = dev.stack.get_logical_id(dev.stack.fanout.bus.node.default_child)
    for rule_id, rule in _service_bus_rules(dev).items():
        props = rule["Properties"]
        assert props["EventBusName"] == {"Ref": bus_id}, rule_id
        assert props["State"] == "ENABLED"
        # Nothing the service publishes under another source can loop back into a consumer.
        assert props["EventPattern"]["source"] == [dev.stack.config.event_source], rule_id
        assert set(props["EventPattern"]["detail-type"]) <= set(DETAIL_TYPES), rule_id
        assert props["Targets"], f"{rule_id} has no target"


def test_rules_route_each_subscription_to_its_own_queue(dev: Synthesized) -> None:
    subscriptions = dev.stack.config.events.subscriptions
    fanout = dev.stack.fanout
    assert set(fanout.subscriptions) == set(subscriptions)
    queues = set()
    for name, detail_types in subscriptions.items():
        subscription = fanout.subscriptions[name]
        rule = dev.resources[dev.stack.get_logical_id(subscription.rule.node.default_child)]["Properties"]
        assert rule["EventPattern"]["detail-type"] == detail_types
        (target,) = rule["Targets"]
        queue_id = dev.stack.get_logical_id(subscription.queue.node.default_child)
        assert target["Arn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
        queues.add(queue_id)
    assert len(queues) == len(subscriptions), "subscriptions share a queue"
    assert fanout.routes == {
        "OrderCancelled": ["notifications"],
        "PaymentReceived": ["fulfilment", "ledger"],
        "CustomerUpdated": ["notifications"],
    }


def test_subscriber_queues_follow_config_and_are_alarmed(dev: Synthesized) -> None:
    settings = dev.stack.config.events
    for subscription in dev.stack.fanout.subscriptions.values():
        queue = dev.resources[dev.stack.get_logical_id(subscription.queue.node.default_child)]["Properties"]
        assert queue["VisibilityTimeout"] == settings.subscription_visibility_timeout_seconds
        assert queue["MessageRetentionPeriod"] == settings.subscription_retention_days * 86_400
        assert queue["RedrivePolicy"]["maxReceiveCount"] == settings.subscription_max_receive_count
    coverage = dev.stack.monitoring.coverage
    for subscription in dev.stack.fanout.subscriptions.values():
        assert subscription.queue.node.path in coverage["queue-age"]
        assert subscription.dead_letter_queue.node.path in coverage["dlq-depth"]


# -- archive -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_archive_keeps_everything_any_rule_can_match(stage: str, request: pytest.FixtureRequest) -> None:
    synthesized: Synthesized = request.getfixturevalue(stage)
    (archive,) = synthesized.of_type("AWS::Events::Archive").values()
    props = archive["Properties"]
    bus_id = synthesized.stack.get_logical_id(synthesized.stack.fanout.bus.node.default_child)
    assert props["SourceArn"] == {"Fn::GetAtt": [bus_id, "Arn"]}
    assert props["RetentionDays"] == synthesized.stack.config.events.archive_retention_days
    # Source only: every detail-type is archived, including ones no rule routes yet.
    assert props["EventPattern"] == {"source": [synthesized.stack.config.event_source]}
    for rule in _service_bus_rules(synthesized).values():
        assert set(rule["Properties"]["EventPattern"]["source"]) <= set(props["EventPattern"]["source"])


def test_replay_inputs_are_stack_outputs(dev: Synthesized) -> None:
    outputs = dev.template.to_json()["Outputs"]
    archive_id = dev.stack.get_logical_id(dev.stack.fanout.archive.node.default_child)
    assert {"Ref": archive_id} in [o["Value"] for o in outputs.values()]
    for subscription in dev.stack.fanout.subscriptions.values():
        rule_id = dev.stack.get_logical_id(subscription.rule.node.default_child)
        assert {"Ref": rule_id} in [o["Value"] for o in outputs.values()], f"{rule_id} name is not an output"


def test_rules_whose_subscriber_calls_a_partner_are_tagged_for_the_replay_tools(dev: Synthesized) -> None:
    config = dev.stack.config
    readers = {c.subscription for c in config.consumers.values() if c.subscription}
    readers.add(config.workflows.subscription)
    tagged = set()
    for name, subscription in dev.stack.fanout.subscriptions.items():
        rule_id = dev.stack.get_logical_id(subscription.rule.node.default_child)
        tags = {t["Key"]: t["Value"] for t in dev.resources[rule_id]["Properties"].get("Tags", [])}
        if SIDE_EFFECTS_TAG in tags:
            tagged.add(name)
            # EventBridge tag values: letters, digits, spaces and _ . : / = + - @ only.
            assert re.fullmatch(r"[\w .:/=+\-@]{1,256}", tags[SIDE_EFFECTS_TAG]), tags[SIDE_EFFECTS_TAG]
    assert tagged == readers
    assert {"fulfilment", "notifications"} <= tagged and "ledger" not in tagged


# -- async invocations and loops ----------------------------------------------------------------


def _referenced_ids(value: Any) -> set[str]:
    if isinstance(value, dict):
        if "Ref" in value:
            return {value["Ref"]}
        if "Fn::GetAtt" in value:
            return {value["Fn::GetAtt"][0]}
        return set().union(*(_referenced_ids(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_referenced_ids(v) for v in value)) if value else set()
    return set()


def test_every_function_a_rule_invokes_has_an_event_invoke_config(dev: Synthesized) -> None:
    """Rules invoke Lambda asynchronously: retries, max age and an on-failure destination are
    required (the rule's DLQ only catches events that could not be handed to Lambda at all)."""
    configs = [c["Properties"] for c in dev.of_type("AWS::Lambda::EventInvokeConfig").values()]
    for rule_id, target in _targets(dev):
        for target_id in _referenced_ids(target["Arn"]):
            resource = dev.resources.get(target_id, {})
            if not resource.get("Type", "").startswith("AWS::Lambda::"):
                continue
            # An alias or version target is configured through its function (+ Qualifier).
            names = {target_id} | _referenced_ids(resource["Properties"].get("FunctionName"))
            config = next((c for c in configs if _referenced_ids(c["FunctionName"]) & names), None)
            assert config is not None, f"{rule_id} invokes {target_id} without an EventInvokeConfig"
            assert {"MaximumRetryAttempts", "MaximumEventAgeInSeconds"} <= set(config), target_id
            assert "Destination" in config["DestinationConfig"]["OnFailure"], target_id


def test_no_function_turns_off_recursive_loop_detection(dev: Synthesized) -> None:
    for logical_id, function in dev.of_type("AWS::Lambda::Function").items():
        assert function["Properties"].get("RecursiveLoop", "Terminate") == "Terminate", logical_id


def test_only_the_ingestion_api_can_put_events_on_the_bus(dev: Synthesized) -> None:
    """No consumer writes back into the bus that triggers it (no recursive loops): no role of the stack
    but the API's may, and the bus itself refuses every other principal (``bus_admits``)."""
    assert "Policy" not in next(iter(dev.of_type("AWS::Events::EventBus").values()))["Properties"]
    bus_id = dev.stack.get_logical_id(dev.stack.fanout.bus.node.default_child)
    put_events_roles = set()
    for policy in dev.of_type("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            on_service_bus = statement["Resource"] == "*" or bus_id in str(statement["Resource"])
            if on_service_bus and any(a in ("events:PutEvents", "events:*", "*") for a in actions):
                put_events_roles |= {role["Ref"] for role in policy["Properties"]["Roles"]}
    api_role = dev.stack.get_logical_id(
        dev.stack.ingestion.node.find_child("PutEventsRole").node.default_child
    )
    assert put_events_roles == {api_role}
    assert bus_admits(dev) == [{"Fn::GetAtt": [api_role, "Arn"]}]


def bus_admits(synthesized: Synthesized) -> list[Any]:
    """The principals the domain bus's policy does not refuse events:PutEvents to."""
    bus_id = synthesized.stack.get_logical_id(synthesized.stack.fanout.bus.node.default_child)
    (policy,) = synthesized.of_type("AWS::Events::EventBusPolicy").values()
    statement = policy["Properties"]["Statement"]
    assert policy["Properties"]["EventBusName"] == {"Ref": bus_id}
    assert (statement["Effect"], statement["Principal"], statement["Action"]) == (
        "Deny",
        {"AWS": "*"},
        "events:PutEvents",
    )
    assert statement["Resource"] == {"Fn::GetAtt": [bus_id, "Arn"]}
    assert list(statement["Condition"]) == ["ArnNotLike"]
    return list(statement["Condition"]["ArnNotLike"]["aws:PrincipalArn"])


def test_operators_named_in_the_config_may_redrive_onto_the_bus(prod: Synthesized) -> None:
    api_role = prod.stack.get_logical_id(prod.stack.ingestion.put_events_role.node.default_child)
    operators = prod.stack.config.events.operator_role_arns
    assert operators
    assert bus_admits(prod) == [{"Fn::GetAtt": [api_role, "Arn"]}, *operators]


# -- the guard works ---------------------------------------------------------------------------------


def test_a_rule_target_without_a_dlq_fails_synth(tmp_path) -> None:
    from aws_cdk import aws_events as events
    from aws_cdk import aws_events_targets as targets

    app, stack = build_app(cdk_context(), outdir=str(tmp_path))
    queue = stack.fanout.subscriptions["ledger"].queue
    rule = events.Rule(
        stack, "Careless", event_bus=stack.fanout.bus, event_pattern=events.EventPattern(source=["x"])
    )
    rule.add_target(targets.SqsQueue(queue))
    with pytest.raises(Exception, match=r"Serverless-EventBusDLQ"):
        app.synth()
