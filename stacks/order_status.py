"""The synchronous read path: GET /orders/{id} answers an order's status within a budget and
sheds load early (fast 503 + Retry-After) while the dependency's circuit is open or the
order queue's backlog is over its threshold."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from constructs import Construct

from lambdas.contracts import dependency_tunables as tunables
from lambdas.contracts import environment as env
from stacks.circuit_breaker import CircuitBreakerStore
from stacks.compliance import acknowledge
from stacks.config import API_INTEGRATION_TIMEOUT_SECONDS, ServiceConfig
from stacks.durable_table import durable_table
from stacks.ingestion_api import IngestionApi
from stacks.load_leveling_consumer import LoadLevelingConsumer
from stacks.monitoring import ServiceMonitoring
from stacks.service_function import ServiceFunction

STATUS_KEY_ATTRIBUTE = "orderId"
STATUS_TTL_ATTRIBUTE = "expiresAt"


class OrderStatusReadPath(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ServiceConfig,
        api: IngestionApi,
        orders: LoadLevelingConsumer,
        circuits: CircuitBreakerStore,
        monitoring: ServiceMonitoring,
    ) -> None:
        super().__init__(scope, construct_id)
        settings = config.status
        self.table = durable_table(
            self,
            "Statuses",
            key=STATUS_KEY_ATTRIBUTE,
            ttl_attribute=STATUS_TTL_ATTRIBUTE,
            removal_policy=config.removal_policy,
        )
        # The consumer records accepted -> processing -> done / failed.
        orders.handler.add_environment("ORDER_STATUS_TABLE_NAME", self.table.table_name)
        self.table.grant(orders.handler.function, "dynamodb:UpdateItem")

        dependency = orders.dependency
        self.handler = ServiceFunction(
            self,
            "StatusReader",
            config=config,
            handler="lambdas.order_status.handler.handler",
            description="GET /orders/{id}: an order's status, or a fast 503 while the pipeline sheds load",
            timeout=Duration.seconds(settings.timeout_seconds),
            reserved_concurrency=settings.reserved_concurrency,
            environment={
                "ORDER_STATUS_TABLE_NAME": self.table.table_name,
                env.CIRCUIT_BREAKER_TABLE_NAME: circuits.table.table_name,
                env.DEPENDENCY_NAME: dependency.name,
                tunables.BREAKER_RECOVERY_SECONDS: str(dependency.settings.breaker_recovery_seconds),
                "ORDER_QUEUE_URL": orders.queue.queue_url,
                "ORDER_QUEUE_BACKLOG_THRESHOLD": str(settings.backlog_threshold),
                "REQUEST_BUDGET_MS": str(settings.request_budget_ms),
                "SHED_RETRY_AFTER_SECONDS": str(settings.shed_retry_after_seconds),
            },
        )
        function = self.handler.function
        self.table.grant(function, "dynamodb:GetItem")
        circuits.table.grant(function, "dynamodb:GetItem")
        orders.queue.grant(function, "sqs:GetQueueAttributes")
        acknowledge(
            self.handler,
            "Serverless::Serverless-LambdaDLQ",
            "Invoked synchronously by API Gateway; the caller gets every error as a response",
        )
        monitoring.watch_function("order-status", self.handler)
        monitoring.watch_table("order-status", self.table)

        by_id = api.orders.add_resource("{id}")
        by_id.add_method(
            "GET",
            apigw.LambdaIntegration(
                self.handler.alias,
                timeout=Duration.seconds(min(settings.timeout_seconds, API_INTEGRATION_TIMEOUT_SECONDS)),
            ),
            request_validator=api.validator,
            request_parameters={"method.request.path.id": True},
        )
