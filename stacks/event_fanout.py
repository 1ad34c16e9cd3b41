"""The service event bus and its archive: the only way back for events that were
delivered but processed wrongly is to replay them from here."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from constructs import Construct

from stacks.config import ServiceConfig


class EventFanout(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: ServiceConfig) -> None:
        super().__init__(scope, construct_id)
        self.bus = events.EventBus(self, "Bus", description=f"{config.stack_name} domain events")
        self.archive = self.bus.archive(
            "Archive",
            description="Every event the ingestion API accepted, for replay",
            event_pattern=events.EventPattern(source=[config.event_source]),
            retention=Duration.days(config.events.archive_retention_days),
        )
