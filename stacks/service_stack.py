"""The service stack only composes constructs; each construct owns one concern."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack, Tags
from constructs import Construct

from stacks import lambda_packaging
from stacks.circuit_breaker import CircuitBreakerStore
from stacks.config import ServiceConfig
from stacks.downstream_dependency import DownstreamDependency
from stacks.event_fanout import EventFanout
from stacks.ingestion_api import IngestionApi
from stacks.load_leveling_consumer import LoadLevelingConsumer
from stacks.monitoring import ServiceMonitoring


def _construct_id(name: str, suffix: str) -> str:
    return "".join(part.capitalize() for part in name.split("-")) + suffix


class ResilientServiceStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: ServiceConfig, **kwargs: Any) -> None:
        super().__init__(
            scope,
            construct_id,
            description=f"{config.service_name}: resilient storage-first pipeline ({config.stage})",
            **kwargs,
        )
        self.config = config
        self.monitoring = ServiceMonitoring(self, "Monitoring", config=config)
        layer = lambda_packaging.dependencies_layer(self, "Dependencies")
        self.circuits = CircuitBreakerStore(self, "CircuitBreaker", removal_policy=config.removal_policy)
        self.downstream = {
            name: DownstreamDependency(
                self,
                _construct_id(name, "Dependency"),
                name=name,
                settings=settings,
                config=config,
                circuits=self.circuits,
                layer=layer,
                monitoring=self.monitoring,
            )
            for name, settings in config.dependencies.items()
        }
        self.consumers = {
            name: LoadLevelingConsumer(
                self,
                _construct_id(name, "Consumer"),
                name=name,
                settings=settings,
                config=config,
                handler=settings.handler,
                dependency=self.downstream[settings.dependency],
                layer=layer,
                monitoring=self.monitoring,
            )
            for name, settings in config.consumers.items()
        }
        self.fanout = EventFanout(self, "Events", config=config, monitoring=self.monitoring)
        self.ingestion = IngestionApi(
            self,
            "Ingestion",
            config=config,
            order_queue=self.consumers[config.orders_consumer].queue,
            event_bus=self.fanout.bus,
            event_source=config.event_source,
            monitoring=self.monitoring,
        )
        functions = [c.handler for c in self.consumers.values()]
        functions += [d.demo for d in self.downstream.values() if d.demo is not None]
        self.monitoring.add_queries([f.log_group for f in functions])
        self.monitoring.finish()

        for key, value in {"service": config.service_name, "stage": config.stage, **config.tags}.items():
            Tags.of(self).add(key, value)
        CfnOutput(self, "ApiUrl", value=self.ingestion.url, description="Base URL of the ingestion API")
        CfnOutput(self, "EventBusName", value=self.fanout.bus.event_bus_name)
        for name, consumer in self.consumers.items():
            CfnOutput(self, _construct_id(name, "QueueUrl"), value=consumer.queue.queue_url)
            CfnOutput(
                self,
                _construct_id(name, "DeadLetterQueueUrl"),
                value=consumer.work.dead_letter_queue.queue_url,
            )
