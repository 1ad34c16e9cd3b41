"""One way to build a Python function of this service, so none is configured by hand."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from lambdas.contracts import environment as env
from stacks import lambda_packaging
from stacks.compliance import acknowledge
from stacks.config import ServiceConfig, log_retention

LIVE_ALIAS = "live"


class ServiceFunction(Construct):
    """Function + its log group + the stack's layers + a published version behind the ``live`` alias.

    Event sources and invokers bind to the alias, so a deployment shifts traffic to a new
    version in one step and the running version is visible in every log line.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ServiceConfig,
        handler: str,
        description: str,
        timeout: Duration,
        memory_mb: int = 256,
        reserved_concurrency: int | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.timeout = timeout
        self.reserved_concurrency = reserved_concurrency
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=log_retention(config.log_retention_days),
            removal_policy=config.removal_policy,
        )
        # Own role instead of AWSLambdaBasicExecutionRole: logs go to this log group only.
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Execution role of {construct_id}",
        )
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=lambda_packaging.RUNTIME,
            architecture=lambda_packaging.ARCHITECTURE,
            code=lambda_packaging.code_asset(),
            handler=handler,
            role=self.role,
            layers=lambda_packaging.function_layers(self, config),
            timeout=timeout,
            memory_size=memory_mb,
            reserved_concurrent_executions=reserved_concurrency,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            # Lambda stops a function that loops through SQS/SNS/S3 with itself; keep it on.
            recursive_loop=lambda_.RecursiveLoop.TERMINATE,
            environment={
                env.SERVICE_NAME: config.service_name,
                env.METRICS_NAMESPACE: config.service_name,
                "POWERTOOLS_LOG_LEVEL": config.log_level,
                "STAGE": config.stage,
                **(environment or {}),
            },
        )
        self.alias = lambda_.Alias(self, "Live", alias_name=LIVE_ALIAS, version=self.function.current_version)
        acknowledge(
            self.role,
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            "X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions; "
            "tests/infra check that no other action is granted on '*'",
        )

    def add_environment(self, key: str, value: str) -> None:
        self.function.add_environment(key, value)
