"""Queue load leveling: the queue absorbs any burst; the consumer drains it at the pace
its dependency can take, inside a bulkhead, with partial batch responses and idempotency."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_lambda_event_sources as sources
from constructs import Construct

from lambdas.contracts.environment import DEPENDENCY_MAX_TRIES
from lambdas.contracts.metrics import METRIC_NOTIFICATIONS_DEFERRED
from stacks.compliance import acknowledge
from stacks.config import ConsumerSettings, ServiceConfig
from stacks.downstream_dependency import DownstreamDependency
from stacks.durable_queue import DurableQueue
from stacks.durable_table import durable_table
from stacks.monitoring import ServiceMonitoring
from stacks.service_function import ServiceFunction

# By handler package: the counter a consumer emits when it completes a record without doing the
# work (its non-critical dependency was unavailable). The queue stays empty, so only that counter
# shows the work is not being done.
DEFERRED_WORK_METRICS = {"lambdas.notifications_consumer": METRIC_NOTIFICATIONS_DEFERRED}


@dataclass(frozen=True)
class PausableMapping:
    """An SQS event source mapping the circuit controller pauses while its dependency's circuit is open
    (and the reconciler resumes if it is left paused): the queue holds the work meanwhile."""

    name: str
    source: sources.SqsEventSource
    max_concurrency: int
    circuit: str

    @property
    def mapping_id(self) -> str:
        return self.source.event_source_mapping_id

    @property
    def mapping_arn(self) -> str:
        return self.source.event_source_mapping_arn


class LoadLevelingConsumer(Construct):
    """Queue + DLQ + bulkheaded function bound to its ``live`` alias + idempotency table."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        settings: ConsumerSettings,
        config: ServiceConfig,
        dependency: DownstreamDependency,
        monitoring: ServiceMonitoring,
        subscription_queue: DurableQueue | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.name = name
        self.settings = settings
        self.dependency = dependency
        removal = config.removal_policy

        # A consumer of a fan-out subscription reads that queue (already alarmed by the fan-out);
        # any other consumer owns its queue.
        self.owns_queue = subscription_queue is None
        self.work = subscription_queue or DurableQueue(
            self,
            "Work",
            visibility_timeout=Duration.seconds(settings.visibility_timeout_seconds),
            retention=Duration.days(settings.retention_days),
            max_receive_count=settings.max_receive_count,
            removal_policy=removal,
        )
        self.idempotency_table = durable_table(
            self, "Idempotency", key="id", ttl_attribute="expiration", removal_policy=removal
        )
        # Only a handler that counts its tries may set them (stacks/config.py).
        tries = {}
        if settings.max_dependency_tries is not None:
            tries = {DEPENDENCY_MAX_TRIES: str(settings.max_dependency_tries)}
        self.handler = ServiceFunction(
            self,
            "Consumer",
            config=config,
            handler=settings.handler,
            description=f"Load-leveling consumer '{name}' (calls {dependency.name})",
            timeout=Duration.seconds(settings.timeout_seconds),
            memory_mb=settings.memory_mb,
            reserved_concurrency=settings.reserved_concurrency,
            environment={
                **dependency.environment(),
                "IDEMPOTENCY_TABLE_NAME": self.idempotency_table.table_name,
                "IDEMPOTENCY_TTL_SECONDS": str(settings.idempotency_ttl_seconds),
                "POISON_MESSAGE_QUEUE_URL": self.work.dead_letter_queue.queue_url,
                "QUEUE_VISIBILITY_TIMEOUT_SECONDS": str(self.work.visibility_timeout_seconds),
                "QUEUE_MAX_RECEIVE_COUNT": str(self.work.max_receive_count),
                **tries,
            },
        )
        function = self.handler.function
        self.idempotency_table.grant(
            function, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"
        )
        dependency.grant_call(function)
        # Poison messages go straight to the DLQ instead of burning maxReceiveCount retries.
        self.work.dead_letter_queue.grant_send_messages(function)
        self.event_source_mapping_source = sources.SqsEventSource(
            self.work.queue,
            batch_size=settings.batch_size,
            max_batching_window=Duration.seconds(settings.batching_window_seconds)
            if settings.batching_window_seconds
            else None,
            report_batch_item_failures=True,
            max_concurrency=settings.max_concurrency,
        )
        self.handler.alias.add_event_source(self.event_source_mapping_source)
        if self.owns_queue:
            monitoring.watch_queue(name, self.work.queue, self.work.dead_letter_queue)
        monitoring.watch_function(f"{name}-consumer", self.handler)
        monitoring.watch_table(f"{name}-idempotency", self.idempotency_table)
        deferred_metric = DEFERRED_WORK_METRICS.get(settings.handler_package)
        if deferred_metric:
            monitoring.watch_deferred_work(name, deferred_metric)
        acknowledge(
            self.handler,
            "Serverless::Serverless-LambdaDLQ",
            "Only invoked by its SQS event source (synchronously); failed records reach the queue's DLQ "
            "through its redrive policy",
        )
        acknowledge(
            self.handler,
            "Serverless::Serverless-LambdaEventSourceMappingDestination",
            "SQS event sources take no on-failure destination; the source queue's redrive policy is the DLQ",
        )

    @property
    def queue(self):
        return self.work.queue

    @property
    def event_source_mapping_id(self) -> str:
        return self.event_source_mapping_source.event_source_mapping_id

    @property
    def pausable(self) -> PausableMapping:
        return PausableMapping(
            self.name, self.event_source_mapping_source, self.settings.max_concurrency, self.dependency.name
        )
