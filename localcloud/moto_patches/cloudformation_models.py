"""CloudFormation models for the resource types of this repository's template that moto 5.2.5 has no
model for (``cloudformation.install_cloudformation_resource_support`` says what each one fixed).

moto finds models through ``CloudFormationModel.__subclasses__()``, so defining a class here registers
it: only ``install_cloudformation_resource_support`` imports this module. Each model lists
``CloudFormationModel`` among its *direct* bases for the same reason; what every model needs beyond
creating its resource (type, name property, ``Ref``, ``Fn::GetAtt``) comes from ``StackResource``.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from moto.core.common_models import CloudFormationModel

__all__ = [
    "CfnCompositeAlarm",
    "CfnGlobalTable",
    "CfnLambdaAlias",
    "CfnLambdaUrl",
    "CfnMetricAlarm",
    "CfnSecret",
    "StackResource",
]


class StackResource:
    """The CloudFormation side of a model, declared instead of written out for each resource type.

    A subclass names its ``resource_type``, the property CloudFormation generates a name for
    (``name_property``, "" for none) and the ``Fn::GetAtt`` attributes it answers, and implements
    ``create`` (the template's ``Properties`` in, the created resource out). An instance is what
    ``create`` returns for a resource moto has no object of its own for: ``Ref`` gives
    ``physical_id``, ``Fn::GetAtt`` the ``attributes`` given.
    """

    resource_type: ClassVar[str]
    name_property: ClassVar[str] = ""
    attribute_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, physical_id: str, **attributes: Any) -> None:
        self.physical_id = physical_id
        self.attributes = attributes

    @property
    def physical_resource_id(self) -> str:
        return self.physical_id

    @classmethod
    def cloudformation_type(cls) -> str:
        return cls.resource_type

    @classmethod
    def cloudformation_name_type(cls) -> str:
        return cls.name_property

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.attribute_names

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name in self.attributes:
            return self.attributes[attribute_name]
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        raise UnformattedGetAttTemplateException()

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict, account_id: str, region_name: str, **kwargs: Any
    ) -> Any:
        return cls.create(resource_name, cloudformation_json["Properties"], account_id, region_name)

    @classmethod
    def create(cls, resource_name: str, properties: Any, account_id: str, region_name: str) -> Any:
        raise NotImplementedError


class CfnGlobalTable(StackResource, CloudFormationModel):
    """``AWS::DynamoDB::GlobalTable`` (what CDK's ``TableV2`` synthesizes), as a single-region table.

    Returns moto's own ``Table``, so ``Ref`` gives the table name and ``Fn::GetAtt Arn`` / ``StreamArn``
    work as for ``AWS::DynamoDB::Table``. ``TimeToLiveSpecification`` is applied; replicas other than
    the stack's region, per-replica settings and ``WriteProvisionedThroughputSettings`` are ignored.
    """

    resource_type = "AWS::DynamoDB::GlobalTable"
    name_property = "TableName"
    attribute_names = ("Arn", "StreamArn", "TableId")

    @classmethod
    def create(cls, resource_name: str, properties: Any, account_id: str, region_name: str) -> Any:
        from moto.dynamodb.models import dynamodb_backends
        from moto.dynamodb.models.table import Table

        as_table = {
            "Properties": {
                "KeySchema": properties["KeySchema"],
                "AttributeDefinitions": properties["AttributeDefinitions"],
                "GlobalSecondaryIndexes": properties.get("GlobalSecondaryIndexes", []),
                "LocalSecondaryIndexes": properties.get("LocalSecondaryIndexes", []),
                "StreamSpecification": properties.get("StreamSpecification"),
                "BillingMode": properties.get("BillingMode", "PROVISIONED"),
            }
        }
        table = Table.create_from_cloudformation_json(resource_name, as_table, account_id, region_name)
        ttl = properties.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb_backends[account_id][region_name].update_time_to_live(resource_name, ttl)
        return table


class CfnSecret(StackResource, CloudFormationModel):
    """``AWS::SecretsManager::Secret`` with ``SecretString`` or ``GenerateSecretString``.

    ``Ref`` and ``Fn::GetAtt Id`` give the secret ARN, as on AWS. The generated value uses moto's
    ``GetRandomPassword`` with the template's options (JSON template + key included).
    """

    resource_type = "AWS::SecretsManager::Secret"
    name_property = "Name"
    attribute_names = ("Id",)

    @classmethod
    def create(cls, resource_name: str, properties: Any, account_id: str, region_name: str) -> Any:
        from moto.secretsmanager.models import secretsmanager_backends

        backend = secretsmanager_backends[account_id][region_name]
        value = properties.get("SecretString")
        if value is None:
            options = properties.get("GenerateSecretString") or {}
            generated = json.loads(
                backend.get_random_password(
                    password_length=int(options.get("PasswordLength", 32)),
                    exclude_characters=options.get("ExcludeCharacters", ""),
                    exclude_numbers=_truthy(options.get("ExcludeNumbers")),
                    exclude_punctuation=_truthy(options.get("ExcludePunctuation")),
                    exclude_uppercase=_truthy(options.get("ExcludeUppercase")),
                    exclude_lowercase=_truthy(options.get("ExcludeLowercase")),
                    include_space=_truthy(options.get("IncludeSpace")),
                    require_each_included_type=_truthy(options.get("RequireEachIncludedType", True)),
                )
            )["RandomPassword"]
            if options.get("SecretStringTemplate") and options.get("GenerateStringKey"):
                document = json.loads(options["SecretStringTemplate"])
                document[options["GenerateStringKey"]] = generated
                value = json.dumps(document)
            else:
                value = generated
        created = backend.create_secret(
            name=resource_name,
            secret_string=value,
            secret_binary=None,
            description=properties.get("Description"),
            tags=properties.get("Tags"),
            kms_key_id=properties.get("KmsKeyId"),
            client_request_token=None,
            replica_regions=[],
            force_overwrite=False,
        )
        arn = (json.loads(created) if isinstance(created, str) else created)["ARN"]
        return cls(arn, Id=arn)


class CfnLambdaAlias(StackResource, CloudFormationModel):
    """``AWS::Lambda::Alias``: created through moto's ``CreateAlias``; ``Ref`` / ``AliasArn`` = alias ARN."""

    resource_type = "AWS::Lambda::Alias"
    attribute_names = ("AliasArn",)

    @classmethod
    def create(cls, resource_name: str, properties: Any, account_id: str, region_name: str) -> Any:
        from moto.awslambda.utils import get_backend

        alias = get_backend(account_id, region_name).create_alias(
            name=properties["Name"],
            function_name=properties["FunctionName"],
            function_version=str(properties["FunctionVersion"]),
            description=properties.get("Description", ""),
            routing_config=properties.get("RoutingConfig"),
        )
        return cls(alias.arn, AliasArn=alias.arn)


class CfnLambdaUrl(StackResource, CloudFormationModel):
    """``AWS::Lambda::Url``: moto's ``CreateFunctionUrlConfig``; ``FunctionUrl`` ends with "/" like AWS's.

    The URL is moto's placeholder (``https://<id>.lambda-url.<region>.on.aws``): nothing answers it.
    ``Ref`` gives the target function's ARN.
    """

    resource_type = "AWS::Lambda::Url"
    attribute_names = ("FunctionArn", "FunctionUrl")

    @classmethod
    def create(cls, resource_name: str, properties: Any, account_id: str, region_name: str) -> Any:
        from moto.awslambda.utils import get_backend

        target = properties["TargetFunctionArn"]  # an alias ARN when the template sets a qualifier
        unqualified = target.rsplit(":", 1)[0] if target.count(":") == 7 else target
        function = get_backend(account_id, region_name).get_function(unqualified)
        config = function.create_url_config(
            {
                "AuthType": properties.get("AuthType"),
                "Cors": properties.get("Cors"),
                "InvokeMode": properties.get("InvokeMode"),
            }
        )
        return cls(target, FunctionUrl=config.url.rstrip("/") + "/", FunctionArn=target)


class CfnMetricAlarm(StackResource, CloudFormationModel):
    """``AWS::CloudWatch::Alarm`` created through moto's ``PutMetricAlarm`` (single metric or ``Metrics``
    math); ``Ref`` = alarm name, ``Fn::GetAtt Arn`` = alarm ARN. moto never evaluates alarms."""

    resource_type = "AWS::CloudWatch::Alarm"
    name_property = "AlarmName"
    attribute_names = ("Arn",)

    @classmethod
    def create(cls, resource_name: str, properties: Any, account_id: str, region_name: str) -> Any:
        from moto.cloudwatch.models import (
            Dimension,
            Metric,
            MetricDataQuery,
            MetricStat,
            cloudwatch_backends,
        )

        queries = None
        if properties.get("Metrics"):
            queries = []
            for query in properties["Metrics"]:
                stat = query.get("MetricStat")
                metric_stat = None
                if stat:
                    metric = stat["Metric"]
                    metric_stat = MetricStat(
                        metric=Metric(
                            metric_name=metric["MetricName"],
                            namespace=metric.get("Namespace"),
                            dimensions=[
                                Dimension(name=d["Name"], value=d["Value"])
                                for d in metric.get("Dimensions", [])
                            ],
                        ),
                        period=str(stat.get("Period")),
                        stat=stat.get("Stat"),
                        unit=stat.get("Unit"),
                    )
                queries.append(
                    MetricDataQuery(
                        query_id=query["Id"],
                        label=query.get("Label"),
                        period=query.get("Period"),
                        return_data=query.get("ReturnData"),
                        expression=query.get("Expression"),
                        metric_stat=metric_stat,
                    )
                )
        alarm = cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=properties.get("AlarmName") or resource_name,
            namespace=properties.get("Namespace"),
            metric_name=properties.get("MetricName"),
            comparison_operator=properties.get("ComparisonOperator"),
            evaluation_periods=properties.get("EvaluationPeriods"),
            period=properties.get("Period"),
            threshold=properties.get("Threshold"),
            statistic=properties.get("Statistic"),
            description=properties.get("AlarmDescription"),
            dimensions=properties.get("Dimensions", []),
            alarm_actions=properties.get("AlarmActions", []),
            metric_data_queries=queries,
            datapoints_to_alarm=properties.get("DatapointsToAlarm"),
            extended_statistic=properties.get("ExtendedStatistic"),
            ok_actions=properties.get("OKActions", []),
            insufficient_data_actions=properties.get("InsufficientDataActions", []),
            unit=properties.get("Unit"),
            actions_enabled=_truthy(properties.get("ActionsEnabled", True)),
            treat_missing_data=properties.get("TreatMissingData"),
            evaluate_low_sample_count_percentile=properties.get("EvaluateLowSampleCountPercentile"),
            threshold_metric_id=properties.get("ThresholdMetricId"),
            tags=properties.get("Tags"),
        )
        return cls(alarm.name, Arn=alarm.alarm_arn)


# CloudFormationModel listed again: moto finds models through CloudFormationModel.__subclasses__().
class CfnCompositeAlarm(CfnMetricAlarm, CloudFormationModel):
    """``AWS::CloudWatch::CompositeAlarm`` (moto stores it as an alarm with a ``rule``)."""

    resource_type = "AWS::CloudWatch::CompositeAlarm"

    @classmethod
    def create(cls, resource_name: str, properties: Any, account_id: str, region_name: str) -> Any:
        from moto.cloudwatch.models import cloudwatch_backends

        alarm = cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=properties.get("AlarmName") or resource_name,
            namespace="",
            metric_name="",
            comparison_operator="",
            evaluation_periods=0,
            period=0,
            threshold=0.0,
            statistic="",
            description=properties.get("AlarmDescription"),
            dimensions=[],
            alarm_actions=properties.get("AlarmActions", []),
            ok_actions=properties.get("OKActions", []),
            insufficient_data_actions=properties.get("InsufficientDataActions", []),
            actions_enabled=_truthy(properties.get("ActionsEnabled", True)),
            rule=properties.get("AlarmRule"),
            tags=properties.get("Tags"),
        )
        return cls(alarm.name, Arn=alarm.alarm_arn)


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"
