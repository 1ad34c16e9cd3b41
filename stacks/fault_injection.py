"""Fault-injection experiments (AWS FIS) for non-production stages: rehearse a slow, failing or
503-answering function before production does it for you.

Each experiment targets functions by tag, runs for a bounded time on a share of invocations,
and stops itself when a harm alarm fires (messages reaching a DLQ, the API failing to store
requests) — never with a stop condition of ``none``. See docs/runbook.md for what each one
should show on the dashboard and which alarms should fire.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy, Stack, Tags
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_fis as fis
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from stacks.compliance import acknowledge, acknowledge_checkov
from stacks.config import ServiceConfig, log_retention
from stacks.service_function import ServiceFunction

TARGET_TAG = "fis-target"
CONFIG_PREFIX = "FisConfigs"
# Published by AWS per region; resolved by CloudFormation at deploy time, so synth needs no lookup.
EXTENSION_PARAMETER = "/aws/service/fis/lambda-extension/AWS-FIS-extension-arm64/1.x.x"
LAMBDA_TARGET_TYPE = "aws:lambda:function"


class FaultInjection(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ServiceConfig,
        consumers: dict[str, ServiceFunction],
        dependencies: dict[str, ServiceFunction],
        stop_alarms: Sequence[cloudwatch.IAlarm],
    ) -> None:
        super().__init__(scope, construct_id)
        settings = config.fault_injection
        if not stop_alarms:
            raise ValueError("fault injection needs at least one stop-condition alarm")
        self.bucket = s3.Bucket(
            self,
            "Configurations",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            removal_policy=RemovalPolicy.DESTROY,
            auto_delete_objects=False,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(1))],
        )
        acknowledge(
            self.bucket,
            "AwsSolutions::AwsSolutions-S1",
            "Holds only the short-lived fault configurations FIS writes for its Lambda extension; "
            "experiments are logged to CloudWatch Logs",
        )
        for check in ("CKV_AWS_18", "CKV_AWS_21"):  # access logging, versioning
            acknowledge_checkov(
                self.bucket.node.default_child,
                check,
                "Holds only the short-lived configurations FIS writes for its Lambda extension (expired "
                "after a day); experiments are logged to CloudWatch Logs, so access logs or versions "
                "would keep nothing worth auditing",
            )
        location = f"{self.bucket.bucket_arn}/{CONFIG_PREFIX}/"
        extension = lambda_.LayerVersion.from_layer_version_arn(
            self, "Extension", ssm.StringParameter.value_for_string_parameter(self, EXTENSION_PARAMETER)
        )
        bucket_resource = self.bucket.node.default_child
        assert isinstance(bucket_resource, s3.CfnBucket)
        bucket_id = Stack.of(self).resolve(Stack.of(self).get_logical_id(bucket_resource))
        # The one wildcard every party needs: the objects under the configuration prefix.
        self.config_objects_finding = (
            f"AwsSolutions::AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{CONFIG_PREFIX}/*]"
        )
        self.targets: dict[str, list[ServiceFunction]] = {"consumer": [], "dependency": []}
        for group, functions in (("consumer", consumers), ("dependency", dependencies)):
            for function in functions.values():
                self._make_target(function, group, config, extension, location)
                acknowledge(
                    function.role,
                    self.config_objects_finding,
                    "The FIS extension reads its fault configurations",
                )
                self.targets[group].append(function)

        self.role = iam.Role(
            self,
            "ExperimentRole",
            assumed_by=iam.ServicePrincipal("fis.amazonaws.com"),
            description="Lets FIS write fault configurations for the tagged functions of this stack",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:DeleteObject"],
                resources=[self.bucket.arn_for_objects(f"{CONFIG_PREFIX}/*")],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["lambda:GetFunction"],
                resources=[f.function.function_arn for group in self.targets.values() for f in group],
            )
        )
        # Tag-based target resolution uses the Resource Groups Tagging API, which has no resource ARNs.
        self.role.add_to_policy(iam.PolicyStatement(actions=["tag:GetResources"], resources=["*"]))
        self.log_group = logs.LogGroup(
            self,
            "ExperimentLogs",
            retention=log_retention(config.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.log_group.grant_write(self.role)
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogDelivery", "logs:DescribeLogGroups", "logs:DescribeResourcePolicies",
                         "logs:PutResourcePolicy"],
                resources=["*"],
            )
        )  # fmt: skip
        acknowledge(
            self.role, self.config_objects_finding, "FIS writes one fault configuration per experiment"
        )
        acknowledge(
            self.role,
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            "tag:GetResources and CloudWatch Logs delivery setup support no resource-level permissions",
        )

        duration = f"PT{settings.duration_minutes}M"
        stop_conditions = [
            fis.CfnExperimentTemplate.ExperimentTemplateStopConditionProperty(
                source="aws:cloudwatch:alarm", value=alarm.alarm_arn
            )
            for alarm in stop_alarms
        ]
        percentage = str(settings.invocation_percentage)
        experiments = {
            "ConsumerLatency": (
                "consumer",
                "aws:lambda:invocation-add-delay",
                {"duration": duration, "invocationPercentage": percentage,
                 "startupDelayMilliseconds": str(settings.delay_milliseconds)},
                "Adds start-up delay to the consumers: duration alarms fire, queue age grows, nothing is lost",
            ),
            "ConsumerErrors": (
                "consumer",
                "aws:lambda:invocation-error",
                {"duration": duration, "invocationPercentage": percentage, "preventExecution": "true"},
                "Fails consumer invocations: records retry from the queue; error-rate alarm fires",
            ),
            "Dependency503": (
                "dependency",
                "aws:lambda:invocation-http-integration-response",
                {"duration": duration, "invocationPercentage": percentage, "statusCode": "503",
                 "contentTypeHeader": "application/json", "preventExecution": "true"},
                "The demo dependency answers 503: upstream errors by dependency, the circuit opens, the queue holds",
            ),
        }  # fmt: skip
        self.templates: dict[str, fis.CfnExperimentTemplate] = {}
        for name, (group, action_id, parameters, description) in experiments.items():
            if not self.targets[group]:
                continue
            self.templates[name] = fis.CfnExperimentTemplate(
                self,
                name,
                description=f"{config.stack_name}: {description}",
                role_arn=self.role.role_arn,
                stop_conditions=stop_conditions,
                targets={
                    "Functions": fis.CfnExperimentTemplate.ExperimentTemplateTargetProperty(
                        resource_type=LAMBDA_TARGET_TYPE,
                        selection_mode="ALL",
                        resource_tags={TARGET_TAG: f"{config.stack_name}-{group}"},
                    )
                },
                actions={
                    "inject": fis.CfnExperimentTemplate.ExperimentTemplateActionProperty(
                        action_id=action_id, parameters=parameters, targets={"Functions": "Functions"}
                    )
                },
                log_configuration=fis.CfnExperimentTemplate.ExperimentTemplateLogConfigurationProperty(
                    log_schema_version=2,
                    cloud_watch_logs_configuration={"LogGroupArn": self.log_group.log_group_arn},
                ),
                tags={"Name": f"{config.stack_name}-{name}"},
            )

    @staticmethod
    def _make_target(
        function: ServiceFunction,
        group: str,
        config: ServiceConfig,
        extension: lambda_.ILayerVersion,
        location: str,
    ) -> None:
        fn = function.function
        fn.add_layers(extension)
        fn.add_environment("AWS_FIS_CONFIGURATION_LOCATION", location)
        fn.add_environment("AWS_LAMBDA_EXEC_WRAPPER", "/opt/aws-fis/bootstrap")
        Tags.of(fn).add(TARGET_TAG, f"{config.stack_name}-{group}")
        bucket_arn = location.split(f"/{CONFIG_PREFIX}/")[0]
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{CONFIG_PREFIX}/*"]}},
            )
        )
        fn.add_to_role_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[f"{location}*"]))
