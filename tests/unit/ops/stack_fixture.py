"""A CloudFormation stack shaped like the service stack's queues, rules, bus, archive and circuit table
(same logical ids and output names as cdk.out would have), deployed on moto for the ops CLI tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from lambdas.contracts.events import SIDE_EFFECTS_TAG

SOURCE = "resilient-orders.ingestion"
STACK = "resilient-orders-test"
BUS = "resilient-orders-test-bus"


def _queue(redrive_to: str | None = None) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    if redrive_to:
        properties["RedrivePolicy"] = {
            "deadLetterTargetArn": {"Fn::GetAtt": [redrive_to, "Arn"]},
            "maxReceiveCount": 5,
        }
    return {"Type": "AWS::SQS::Queue", "Properties": properties}


def _rule(
    bus: tuple[str, str], pattern: dict[str, Any], queue: str, dlq: str, side_effects: str | None = None
) -> dict[str, Any]:
    # moto resolves Ref of an AWS::Events::EventBus to its model, not its name: name it literally.
    logical_id, name = bus
    # As stacks/service_stack.py tags the rules whose subscriber calls a partner.
    tags = [{"Key": SIDE_EFFECTS_TAG, "Value": side_effects}] if side_effects else []
    return {
        "Type": "AWS::Events::Rule",
        "DependsOn": [logical_id],
        "Properties": {
            "EventBusName": name,
            "EventPattern": pattern,
            "State": "ENABLED",
            "Targets": [
                {
                    "Id": "Target0",
                    "Arn": {"Fn::GetAtt": [queue, "Arn"]},
                    "DeadLetterConfig": {"Arn": {"Fn::GetAtt": [dlq, "Arn"]}},
                    "RetryPolicy": {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 20},
                }
            ],
            "Tags": tags,
        },
    }


TEMPLATE: dict[str, Any] = {
    "Resources": {
        "OrdersConsumerWorkDeadLetterQueue04347820": _queue(),
        "OrdersConsumerWorkQueueC4A8C288": _queue("OrdersConsumerWorkDeadLetterQueue04347820"),
        "EventsBus45DE4339": {"Type": "AWS::Events::EventBus", "Properties": {"Name": BUS}},
        "EventsFulfilmentWorkDeadLetterQueueF0A04F31": _queue(),
        "EventsFulfilmentWorkQueueBA03BC9D": _queue("EventsFulfilmentWorkDeadLetterQueueF0A04F31"),
        "EventsFulfilmentRuleBE062CC0": _rule(
            ("EventsBus45DE4339", BUS),
            {"source": [SOURCE], "detail-type": ["OrderCancelled", "PaymentReceived"]},
            "EventsFulfilmentWorkQueueBA03BC9D",
            "EventsFulfilmentWorkDeadLetterQueueF0A04F31",
            side_effects="order fulfilment charges and ships at the partner dependency",
        ),
        "EventsNotificationsWorkDeadLetterQueue3F73D618": _queue(),
        "EventsNotificationsWorkQueue1F99B048": _queue("EventsNotificationsWorkDeadLetterQueue3F73D618"),
        "EventsNotificationsRuleA0030FD3": _rule(
            ("EventsBus45DE4339", BUS),
            {"source": [SOURCE], "detail-type": ["OrderCancelled", "CustomerUpdated"]},
            "EventsNotificationsWorkQueue1F99B048",
            "EventsNotificationsWorkDeadLetterQueue3F73D618",
            side_effects="the notifications consumer calls the notifier dependency",
        ),
        # A rule whose DLQ no queue redrives into: only EventBridge writes to it.
        "WorkflowsCircuitEventsBus1234ABCD": {
            "Type": "AWS::Events::EventBus",
            "Properties": {"Name": "circuit-events"},
        },
        "WorkflowsAlertsQueue0A1B2C3D": _queue(),
        "WorkflowsCircuitOpenedUndeliveredQueue570FA8E1": _queue(),
        "WorkflowsCircuitOpenedB04C1CBC": _rule(
            ("WorkflowsCircuitEventsBus1234ABCD", "circuit-events"),
            {"source": ["resilient-orders.circuits"]},
            "WorkflowsAlertsQueue0A1B2C3D",
            "WorkflowsCircuitOpenedUndeliveredQueue570FA8E1",
        ),
        "CircuitBreakerCircuitsFFCE2801": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
                "BillingMode": "PAY_PER_REQUEST",
            },
        },
    },
    "Outputs": {
        "EventBusName": {"Value": BUS},
        "OrdersQueueUrl": {"Value": {"Ref": "OrdersConsumerWorkQueueC4A8C288"}},
        "OrdersDeadLetterQueueUrl": {"Value": {"Ref": "OrdersConsumerWorkDeadLetterQueue04347820"}},
        "EventsFulfilmentRuleNameAD0877C3": {"Value": {"Ref": "EventsFulfilmentRuleBE062CC0"}},
        "EventsFulfilmentQueueUrl26E90602": {"Value": {"Ref": "EventsFulfilmentWorkQueueBA03BC9D"}},
        "EventsFulfilmentDeadLetterQueueUrlBDA18F38": {
            "Value": {"Ref": "EventsFulfilmentWorkDeadLetterQueueF0A04F31"}
        },
        "EventsNotificationsRuleName5B21ABE8": {"Value": {"Ref": "EventsNotificationsRuleA0030FD3"}},
        "EventsNotificationsQueueUrl4FFC2793": {"Value": {"Ref": "EventsNotificationsWorkQueue1F99B048"}},
        "EventsNotificationsDeadLetterQueueUrl816EDB87": {
            "Value": {"Ref": "EventsNotificationsWorkDeadLetterQueue3F73D618"}
        },
    },
}


@dataclass
class DeployedStack:
    name: str
    outputs: dict[str, str]
    resources: dict[str, str]  # logical id -> physical id

    def output(self, prefix: str) -> str:
        [value] = [v for k, v in self.outputs.items() if k.startswith(prefix)]
        return value

    @property
    def orders_queue(self) -> str:
        return self.outputs["OrdersQueueUrl"]

    @property
    def orders_dlq(self) -> str:
        return self.outputs["OrdersDeadLetterQueueUrl"]

    @property
    def fulfilment_queue(self) -> str:
        return self.output("EventsFulfilmentQueueUrl")

    @property
    def fulfilment_dlq(self) -> str:
        return self.output("EventsFulfilmentDeadLetterQueueUrl")

    @property
    def notifications_queue(self) -> str:
        return self.output("EventsNotificationsQueueUrl")

    @property
    def undelivered_dlq(self) -> str:
        return self.resources["WorkflowsCircuitOpenedUndeliveredQueue570FA8E1"]

    @property
    def circuit_table(self) -> str:
        return self.resources["CircuitBreakerCircuitsFFCE2801"]


def deploy(cloudformation: Any) -> DeployedStack:
    cloudformation.create_stack(StackName=STACK, TemplateBody=json.dumps(TEMPLATE))
    described = cloudformation.describe_stacks(StackName=STACK)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    summaries = cloudformation.list_stack_resources(StackName=STACK)["StackResourceSummaries"]
    resources = {s["LogicalResourceId"]: s["PhysicalResourceId"] for s in summaries}
    return DeployedStack(name=STACK, outputs=outputs, resources=resources)
