"""The service stack only composes constructs; each construct owns one concern."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack, Tags
from constructs import Construct

from stacks import retry_budget
from stacks.circuit_breaker import CircuitBreakerStore
from stacks.config import ServiceConfig
from stacks.consumer_reconciler import ConsumerReconciler
from stacks.downstream_dependency import DownstreamDependency
from stacks.event_fanout import EventFanout
from stacks.fault_injection import FaultInjection
from stacks.ingestion_api import IngestionApi
from stacks.load_leveling_consumer import LoadLevelingConsumer
from stacks.monitoring import ServiceMonitoring
from stacks.order_status import OrderStatusReadPath
from stacks.workflows import Workflows


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
        # Fails synth, naming the path and its layers, when retries nest past a dependency's budget.
        self.retry_paths = retry_budget.check(config)
        self.template_options.metadata = {
            retry_budget.METADATA_KEY: retry_budget.as_metadata(self.retry_paths)
        }
        self.monitoring = ServiceMonitoring(self, "Monitoring", config=config)
        self.circuits = CircuitBreakerStore(
            self,
            "CircuitBreaker",
            removal_policy=config.removal_policy,
            monitoring=self.monitoring,
            service_name=config.service_name,
        )
        self.downstream = {
            name: DownstreamDependency(
                self,
                _construct_id(name, "Dependency"),
                name=name,
                settings=settings,
                config=config,
                circuits=self.circuits,
                monitoring=self.monitoring,
            )
            for name, settings in config.dependencies.items()
        }
        self.fanout = EventFanout(self, "Events", config=config, monitoring=self.monitoring)
        self.consumers = {
            name: LoadLevelingConsumer(
                self,
                _construct_id(name, "Consumer"),
                name=name,
                settings=settings,
                config=config,
                dependency=self.downstream[settings.dependency],
                monitoring=self.monitoring,
                subscription_queue=self.fanout.subscriptions[settings.subscription].work
                if settings.subscription
                else None,
            )
            for name, settings in config.consumers.items()
        }
        for name, settings in config.consumers.items():
            if settings.subscription:
                self.fanout.subscriptions[settings.subscription].declare_side_effects(
                    f"the {name} consumer calls the {settings.dependency} dependency"
                )
        self.fanout.subscriptions[config.workflows.subscription].declare_side_effects(
            f"order fulfilment charges and ships at the {config.workflows.dependency} dependency"
        )
        self.workflows = Workflows(
            self,
            "Workflows",
            config=config,
            circuits=self.circuits,
            dependencies=self.downstream,
            consumers=self.consumers,
            fulfilment_queue=self.fanout.subscriptions[config.workflows.subscription],
            monitoring=self.monitoring,
        )
        self.reconciler = ConsumerReconciler(
            self,
            "ConsumerReconciler",
            config=config,
            workflows=self.workflows,
            monitoring=self.monitoring,
        )
        self.ingestion = IngestionApi(
            self,
            "Ingestion",
            config=config,
            order_queue=self.consumers[config.orders_consumer].queue,
            event_bus=self.fanout.bus,
            event_source=config.event_source,
            monitoring=self.monitoring,
        )
        self.fanout.admit_only(self.ingestion.put_events_role)
        self.order_status = OrderStatusReadPath(
            self,
            "OrderStatus",
            config=config,
            api=self.ingestion,
            orders=self.consumers[config.orders_consumer],
            circuits=self.circuits,
            monitoring=self.monitoring,
        )
        if config.fault_injection.enabled:
            self.fault_injection = FaultInjection(
                self,
                "FaultInjection",
                config=config,
                consumers={name: c.handler for name, c in self.consumers.items()},
                dependencies={name: d.demo for name, d in self.downstream.items() if d.demo is not None},
                stop_alarms=self.monitoring.harm_alarms,
            )
        functions = [c.handler for c in self.consumers.values()] + list(self.workflows.functions.values())
        functions += [self.workflows.starter, self.order_status.handler, self.reconciler.function]
        functions += [d.demo for d in self.downstream.values() if d.demo is not None]
        self.monitoring.add_queries([f.log_group for f in functions])
        self.monitoring.finish()

        for key, value in {"service": config.service_name, "stage": config.stage, **config.tags}.items():
            Tags.of(self).add(key, value)
        CfnOutput(self, "ApiUrl", value=self.ingestion.url, description="Base URL of the ingestion API")
        CfnOutput(self, "EventBusName", value=self.fanout.bus.event_bus_name)
        CfnOutput(self, "CircuitTableName", value=self.circuits.table.table_name)
        CfnOutput(self, "OrderStatusTableName", value=self.order_status.table.table_name)
        for name, consumer in self.consumers.items():
            CfnOutput(self, _construct_id(name, "QueueUrl"), value=consumer.queue.queue_url)
            CfnOutput(
                self,
                _construct_id(name, "DeadLetterQueueUrl"),
                value=consumer.work.dead_letter_queue.queue_url,
            )
