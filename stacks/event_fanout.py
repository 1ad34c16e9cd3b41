"""EventBridge fan-out: the service bus, its archive, and one rule + queue per subscriber.

Every event the ingestion API accepts lands on the bus and in the archive. Each subscriber in
``config.events.subscriptions`` gets its own rule (matching the fixed ingestion source and its
detail-types), its own queue and its own DLQ, so subscribers scale and fail independently.

Failure paths (docs/events.md):
- delivery failures (EventBridge cannot put the event on the queue within the rule target's
  retry policy) go to the target's DeadLetterConfig: the subscription's DLQ, whose policy
  lets only that rule send;
- processing failures (the subscriber fails on a message) never reach EventBridge's DLQ: the
  queue's redrive policy moves the message to the same DLQ after ``max_receive_count``
  receives. Messages from the two paths are told apart by the ERROR_CODE / RULE_ARN message
  attributes EventBridge adds; a redrive (DLQ -> queue) recovers both;
- events delivered but processed wrongly are replayed from the archive
  (ops/replay.py), to named rules only. The reader of a subscription that calls a
  partner declares it (``Subscription.declare_side_effects``): its rule is tagged, and the
  replay tools refuse it unless told ``--allow-side-effects``.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Tags
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from lambdas.contracts.events import DETAIL_TYPES, SIDE_EFFECTS_TAG
from stacks.config import EventSettings, ServiceConfig
from stacks.durable_queue import DurableQueue
from stacks.event_contracts import event_pattern
from stacks.monitoring import ServiceMonitoring


def _construct_id(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


class Subscription(Construct):
    """One subscriber: a rule on the bus -> its own queue, with a DLQ for both failure paths."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        bus: events.IEventBus,
        source: str,
        detail_types: list[str],
        settings: EventSettings,
        config: ServiceConfig,
    ) -> None:
        super().__init__(scope, construct_id)
        self.name = name
        self.detail_types = tuple(detail_types)
        self.work = DurableQueue(
            self,
            "Work",
            visibility_timeout=Duration.seconds(settings.subscription_visibility_timeout_seconds),
            retention=Duration.days(settings.subscription_retention_days),
            max_receive_count=settings.subscription_max_receive_count,
            removal_policy=config.removal_policy,
        )
        self.event_pattern = event_pattern(source, detail_types)
        self.rule = events.Rule(
            self,
            "Rule",
            event_bus=bus,
            description=f"{', '.join(self.detail_types)} from {source} -> the {name} queue",
            event_pattern=events.EventPattern(
                source=self.event_pattern["source"], detail_type=self.event_pattern["detail-type"]
            ),
        )
        # The SqsQueue target scopes both queue policies to this rule: the queue's and the
        # DLQ's statements allow events.amazonaws.com only with aws:SourceArn = this rule
        # (@aws-cdk/aws-events:eventsTargetQueueSameAccount). SSE-SQS keys need no grant.
        self.rule.add_target(
            targets.SqsQueue(
                self.work.queue,
                dead_letter_queue=self.work.dead_letter_queue,
                retry_attempts=settings.target_retry_attempts,
                max_event_age=Duration.seconds(settings.target_max_event_age_seconds),
            )
        )

    def declare_side_effects(self, what: str) -> None:
        """Tag the rule: its subscriber acts outside the service, so a replay to it is opt-in.

        ``what`` becomes the tag value, shown when a replay is refused (tag values allow letters,
        digits, spaces and ``_ . : / = + - @`` only).
        """
        Tags.of(self.rule).add(SIDE_EFFECTS_TAG, what)

    @property
    def queue(self) -> sqs.Queue:
        return self.work.queue

    @property
    def dead_letter_queue(self) -> sqs.Queue:
        return self.work.dead_letter_queue


class EventFanout(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: ServiceConfig, monitoring: ServiceMonitoring
    ) -> None:
        super().__init__(scope, construct_id)
        settings = config.events
        self.source = config.event_source
        self.bus = events.EventBus(self, "Bus", description=f"{config.stack_name} domain events")
        # Everything the ingestion API accepted, whatever its detail-type, so a subscriber added
        # later can be back-filled too. EventBridge's managed archive rule skips replayed events,
        # so a replay is never archived again.
        self.archive = self.bus.archive(
            "Archive",
            description="Every event the ingestion API accepted, for replay",
            event_pattern=events.EventPattern(source=[self.source]),
            retention=Duration.days(settings.archive_retention_days),
        )
        self.subscriptions = {
            name: Subscription(
                self,
                _construct_id(name),
                name=name,
                bus=self.bus,
                source=self.source,
                detail_types=detail_types,
                settings=settings,
                config=config,
            )
            for name, detail_types in settings.subscriptions.items()
        }
        for name, subscription in self.subscriptions.items():
            # Age/growth of the queue (its subscriber is not keeping up) and DLQ depth (delivery
            # or processing failures waiting for a redrive).
            monitoring.watch_queue(f"events-{name}", subscription.queue, subscription.dead_letter_queue)
            monitoring.watch_rule(f"events-{name}", subscription.rule, self.bus)
        self.operator_role_arns = list(settings.operator_role_arns)
        self.routes = {
            detail_type: sorted(n for n, s in self.subscriptions.items() if detail_type in s.detail_types)
            for detail_type in DETAIL_TYPES
        }

        CfnOutput(self, "ArchiveName", value=self.archive.archive_name, description="For ops replay")
        for name, subscription in self.subscriptions.items():
            prefix = _construct_id(name)
            CfnOutput(
                self,
                f"{prefix}RuleName",
                value=subscription.rule.rule_name,
                description=f"--rule for replaying to the {name} subscription",
            )
            CfnOutput(self, f"{prefix}QueueUrl", value=subscription.queue.queue_url)
            CfnOutput(self, f"{prefix}DeadLetterQueueUrl", value=subscription.dead_letter_queue.queue_url)

    def admit_only(self, publisher: iam.IRole) -> None:
        """The bus refuses events from every principal but ``publisher`` (the ingestion API's role) and the
        configured operators, whatever their identity policies grant: nothing skips the API's validation,
        and no consumer can write back into the bus that triggers it."""
        self.bus.add_to_resource_policy(
            iam.PolicyStatement(
                sid="OnlyTheIngestionApiAndOperators",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["events:PutEvents"],
                resources=[self.bus.event_bus_arn],
                conditions={
                    "ArnNotLike": {"aws:PrincipalArn": [publisher.role_arn, *self.operator_role_arns]}
                },
            )
        )
