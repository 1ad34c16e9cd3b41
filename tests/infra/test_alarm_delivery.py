"""Alarms (and every other service-to-topic/queue publication) can actually be delivered.

The rule lives in ``publisher_keys``; the tiny stacks below prove it fails on the patterns it
exists to catch (the alarm topic on ``alias/aws/sns`` refused every alarm action, silently).
"""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import App, Duration, Stack, assertions
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs

from tests.infra.conftest import Synthesized
from tests.infra.publisher_keys import CLOUDWATCH, EVENTS, SNS, count_publications, publisher_key_violations


def test_every_publisher_can_use_the_key_of_its_topic_or_queue(dev: Synthesized, prod: Synthesized) -> None:
    for synthesized in (dev, prod):
        template = synthesized.template.to_json()
        assert publisher_key_violations(template) == []
        counts = count_publications(template)
        alarms = len(synthesized.of_type("AWS::CloudWatch::Alarm"))
        assert counts[CLOUDWATCH] > alarms  # alarm and OK actions of every alarm, and the composite
        assert counts[EVENTS] >= len(synthesized.of_type("AWS::Events::Rule"))
    assert count_publications(prod.template.to_json())[SNS] == 1  # the e-mail subscription's DLQ


def _statements(synthesized: Synthesized, resource_type: str, document: str) -> list[dict[str, Any]]:
    return [
        s for r in synthesized.of_type(resource_type).values() for s in r["Properties"][document]["Statement"]
    ]


def test_only_this_accounts_alarms_may_use_the_key_and_publish(dev: Synthesized) -> None:
    (topic,) = dev.of_type("AWS::SNS::Topic").values()
    key_id = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = dev.resources[key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    granted = {
        "key": [s for s in key["KeyPolicy"]["Statement"] if s.get("Principal") == {"Service": CLOUDWATCH}],
        "topic": [
            s
            for s in _statements(dev, "AWS::SNS::TopicPolicy", "PolicyDocument")
            if s.get("Principal") == {"Service": CLOUDWATCH}
        ],
    }
    assert granted["key"] and granted["topic"]
    for where, statements in granted.items():
        for statement in statements:
            conditions = statement.get("Condition", {})
            assert conditions["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}, where
            arn = conditions["ArnLike"]["aws:SourceArn"]["Fn::Join"][1]
            assert arn[0] == "arn:" and arn[-1] == ":alarm:*", where
            assert {"Ref": "AWS::Region"} in arn and {"Ref": "AWS::AccountId"} in arn, where


# -- the rule fails on what it exists to catch ---------------------------------------------------


def _template(build: Any) -> dict[str, Any]:
    stack = Stack(App(), "Tiny")
    build(stack)
    return assertions.Template.from_stack(stack).to_json()


def _alarm_on(stack: Stack, topic: sns.ITopic) -> None:
    metric = cloudwatch.Metric(namespace="Tiny", metric_name="Errors", period=Duration.minutes(1))
    alarm = metric.create_alarm(stack, "Alarm", threshold=0, evaluation_periods=1)
    alarm.add_alarm_action(actions.SnsAction(topic))


def test_rule_reports_an_alarm_topic_on_the_aws_managed_key() -> None:
    def old_alarm_topic(stack: Stack) -> None:  # what stacks/monitoring.py used to build
        topic = sns.Topic(
            stack, "Topic", master_key=kms.Alias.from_alias_name(stack, "SnsKey", "alias/aws/sns")
        )
        topic.grant_publish(iam.ServicePrincipal(CLOUDWATCH))
        _alarm_on(stack, topic)

    (problem,) = publisher_key_violations(_template(old_alarm_topic))
    assert problem.startswith("Alarm") and "alias/aws/sns" in problem and CLOUDWATCH in problem


def test_rule_reports_a_customer_key_that_does_not_grant_cloudwatch() -> None:
    def ungranted_key(stack: Stack) -> None:
        _alarm_on(stack, sns.Topic(stack, "Topic", master_key=kms.Key(stack, "Key")))

    (problem,) = publisher_key_violations(_template(ungranted_key))
    assert f"does not allow {CLOUDWATCH}" in problem


def test_rule_accepts_a_granted_key_and_an_unencrypted_topic() -> None:
    def granted_key(stack: Stack) -> None:
        key = kms.Key(stack, "Key")
        key.grant(iam.ServicePrincipal(CLOUDWATCH), "kms:Decrypt", "kms:GenerateDataKey*")
        _alarm_on(stack, sns.Topic(stack, "Topic", master_key=key))

    def unencrypted(stack: Stack) -> None:
        _alarm_on(stack, sns.Topic(stack, "Topic"))

    assert publisher_key_violations(_template(granted_key)) == []
    assert publisher_key_violations(_template(unencrypted)) == []


@pytest.mark.parametrize(
    ("encryption", "reported"),
    [
        (
            lambda stack: {
                "encryption_master_key": kms.Alias.from_alias_name(stack, "SqsKey", "alias/aws/sqs")
            },
            True,
        ),
        (lambda stack: {"encryption_master_key": kms.Key(stack, "Key")}, True),
        (lambda stack: {"encryption": sqs.QueueEncryption.SQS_MANAGED}, False),
    ],
    ids=["aws-managed-key", "ungranted-customer-key", "sse-sqs"],
)
def test_rule_checks_eventbridge_targets_and_dlqs_and_sns_subscription_dlqs(
    encryption: Any, reported: bool
) -> None:
    def pipeline(stack: Stack) -> None:
        settings = encryption(stack)
        queue = sqs.Queue(stack, "Work", **settings)
        dlq = sqs.Queue(stack, "RuleDlq", **settings)
        # L1: the L2 target would grant EventBridge on the key itself, hiding what the rule must catch.
        events.CfnRule(
            stack,
            "Rule",
            event_pattern={"source": ["tiny"]},
            targets=[
                events.CfnRule.TargetProperty(
                    id="work",
                    arn=queue.queue_arn,
                    dead_letter_config=events.CfnRule.DeadLetterConfigProperty(arn=dlq.queue_arn),
                )
            ],
        )
        subscription_dlq = sqs.Queue(stack, "SubscriptionDlq", **settings)
        sns.Topic(stack, "Topic").add_subscription(
            subscriptions.EmailSubscription("someone@example.com", dead_letter_queue=subscription_dlq)
        )

    problems = publisher_key_violations(_template(pipeline))
    if reported:
        assert len(problems) == 3, problems
        assert sum(EVENTS in p for p in problems) == 2 and sum(SNS in p for p in problems) == 1
    else:
        assert problems == []
