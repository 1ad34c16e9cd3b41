"""The on-call topic every alarm notifies, encrypted with a key CloudWatch is allowed to use.

CloudWatch publishes to an encrypted topic only if the topic's key policy lets
``cloudwatch.amazonaws.com`` use the key. The AWS-managed ``alias/aws/sns`` key's policy cannot be
changed and does not, so with it every alarm action is refused at publish time, silently. Hence a
customer-managed key, usable only by this account's alarms in this region (``aws:SourceAccount`` and
``aws:SourceArn``: CloudWatch must not be a confused deputy for another account's alarms).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

CLOUDWATCH_SERVICE = "cloudwatch.amazonaws.com"
# What a publisher needs from the key of an encrypted topic or queue (the data key for the message).
PUBLISHER_KEY_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey*")


class AlarmTopic(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, display_name: str, removal_policy: RemovalPolicy
    ) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            description=f"Encrypts the alarm topic '{display_name}'; CloudWatch alarms may use it",
            enable_key_rotation=True,
            removal_policy=removal_policy,
        )
        conditions = self._only_our_alarms()
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublish",
                principals=[iam.ServicePrincipal(CLOUDWATCH_SERVICE)],
                actions=list(PUBLISHER_KEY_ACTIONS),
                resources=["*"],
                conditions=conditions,
            )
        )
        # "Default": the topic keeps the logical id it had before this construct existed, so a
        # deploy updates the topic instead of replacing it (and its e-mail subscription).
        self.topic = sns.Topic(
            self, "Default", display_name=display_name, master_key=self.key, enforce_ssl=True
        )
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublish",
                principals=[iam.ServicePrincipal(CLOUDWATCH_SERVICE)],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions=conditions,
            )
        )

    def _only_our_alarms(self) -> dict[str, Any]:
        stack = Stack.of(self)
        alarms = stack.format_arn(
            service="cloudwatch",
            resource="alarm",
            resource_name="*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        return {
            "StringEquals": {"aws:SourceAccount": stack.account},
            "ArnLike": {"aws:SourceArn": alarms},
        }
