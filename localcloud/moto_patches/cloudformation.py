"""moto's CloudFormation creates every resource of this repository's synthesized template.

The models moto lacks are in ``cloudformation_models``; this module installs them and fixes moto's own
models where they break on the template (see ``install_cloudformation_resource_support``).
"""

from __future__ import annotations

import json
import threading
from typing import Any

__all__ = ["install_cloudformation_resource_support"]

_LOCK = threading.Lock()
_ORIGINALS: dict[str, Any] = {}


def install_cloudformation_resource_support() -> None:
    """Let moto's CloudFormation create every resource of this repository's synthesized template.

    Works around these moto 5.2.5 CloudFormation gaps, each found by ``create_stack`` with the
    template ``stacks.application.build_app`` synthesizes (moto answered HTTP 500 or created nothing):

    * No model for ``AWS::DynamoDB::GlobalTable`` (CDK ``TableV2``), ``AWS::SecretsManager::Secret``,
      ``AWS::Lambda::Alias`` or ``AWS::Lambda::Url``: the resource was skipped with a warning, and every
      ``Ref``/``Fn::GetAtt`` to it (table names in environment variables, the event source mapping's
      ``FunctionName`` = alias) broke the resources that use it. Models are added
      (``cloudformation_models``).
    * ``AWS::SSM::Parameter`` without ``Name`` crashed (``'NoneType' object has no attribute 'lower'``):
      CloudFormation generates a name; moto passed ``None``. The generated name is used now. Its ``Tags``
      (a JSON *map* in this resource type) crashed moto, which expects a list; a map is converted.
    * ``Fn::GetAtt <AWS::Lambda::Version>.Version`` crashed (``LambdaVersion`` has no
      ``get_cfn_attribute``); it is added.
    * ``AWS::Events::Archive`` without ``ArchiveName``: moto generated a name longer than the 48
      characters its own ``CreateArchive`` accepts; it is shortened the way CloudFormation does (stack name
      cut, random suffix kept). Its ``EventPattern`` (a JSON object in templates) crashed moto, which
      expects a string; it is serialised.
    * ``Ref`` to an ``AWS::Events::EventBus`` returned the Python object (``<moto.events.models.EventBus
      object ...>``) instead of the bus name, so a ``PutEvents`` request template built with it named a
      bus that does not exist. ``EventBus.physical_resource_id`` returns the name, as on AWS. Same bug
      and fix for ``AWS::Events::Archive`` (its ``Ref`` is the archive name).
    * No model for ``AWS::CloudWatch::Alarm`` / ``CompositeAlarm``: skipped, which is harmless until
      something references one (the dashboard's ``Fn::GetAtt Alarm.Arn``): then ``CreateStack`` failed
      with "Fn::GetAtt references undefined resource". Alarms are created with ``PutMetricAlarm`` now
      (composite ones with their rule), so ``DescribeAlarms`` lists them; moto never evaluates them.
    * ``AWS::KMS::Key`` with ``Tags`` crashed (``KeyError: 'TagKey'``): CloudFormation's tags are
      ``Key``/``Value`` pairs, moto's KMS tagger wants ``TagKey``/``TagValue``; they are converted, and a
      ``KeyPolicy`` object is serialised as ``CreateKey`` would receive it.
    * ``AWS::StepFunctions::StateMachine`` only read ``DefinitionString``: ``Definition`` (object),
      ``DefinitionSubstitutions`` (``${Name}`` placeholders, what CDK's ``DefinitionBody.fromFile`` plus
      substitutions produce) and ``DefinitionS3Location`` (read back from the emulated S3 bucket) are now
      resolved into the definition before moto stores it.

    Still skipped by moto (harmless for running the data path; ``DeployedStack.not_emulated`` lists them):
    ``AWS::SQS::QueuePolicy``, ``AWS::SNS::TopicPolicy``, ``AWS::Logs::QueryDefinition``,
    ``AWS::Lambda::EventInvokeConfig`` (the scheduled reconciler's; the local cloud runs no schedules),
    ``AWS::ApiGateway::Stage``, ``Model``, ``RequestValidator``, ``GatewayResponse`` and ``Account`` (the
    local front door reads the API's pieces from the template itself).

    Verified by ``tests/e2e/test_deploy.py``: the synthesized stack reaches ``CREATE_COMPLETE`` with a
    physical id for each of these resources, the consumer's environment holds the real table names,
    secret ARN and DLQ URL, the event source mapping points at the ``live`` alias's version with the
    template's batch size / window / maximum concurrency, the archive exists and the ``EventBusName``
    output is the bus name; a small template with ``DefinitionSubstitutions`` creates a runnable state
    machine. Idempotent.
    """
    from moto.awslambda.models import LambdaVersion
    from moto.cloudformation import parsing
    from moto.events.models import Archive, EventBus
    from moto.kms.models import Key
    from moto.ssm.models import Parameter
    from moto.stepfunctions.models import StateMachine

    with _LOCK:
        if _ORIGINALS:
            return
        # Defining the models registers them with moto (CloudFormationModel.__subclasses__()).
        from localcloud.moto_patches import cloudformation_models  # noqa: F401

        _ORIGINALS.update(
            {
                "parameter_create": Parameter.__dict__["create_from_cloudformation_json"],
                "archive_create": Archive.__dict__["create_from_cloudformation_json"],
                "state_machine_create": StateMachine.__dict__["create_from_cloudformation_json"],
                "key_create": Key.__dict__["create_from_cloudformation_json"],
                "generate_resource_name": parsing.generate_resource_name,
            }
        )
        originals = _ORIGINALS

    parameter_create = originals["parameter_create"].__func__
    archive_create = originals["archive_create"].__func__
    state_machine_create = originals["state_machine_create"].__func__
    key_create = originals["key_create"].__func__
    generate_resource_name = originals["generate_resource_name"]

    def create_parameter(
        cls: Any, resource_name: str, cloudformation_json: dict, *args: Any, **kw: Any
    ) -> Any:
        properties = cloudformation_json["Properties"]
        properties.setdefault("Name", resource_name)
        if isinstance(properties.get("Tags"), dict):
            properties["Tags"] = [{"Key": k, "Value": v} for k, v in properties["Tags"].items()]
        return parameter_create(cls, resource_name, cloudformation_json, *args, **kw)

    def create_key(cls: Any, resource_name: str, cloudformation_json: dict, *args: Any, **kw: Any) -> Any:
        properties = cloudformation_json["Properties"]
        properties["Tags"] = [
            {"TagKey": tag.get("Key", tag.get("TagKey")), "TagValue": tag.get("Value", tag.get("TagValue"))}
            for tag in properties.get("Tags") or []
        ]
        if isinstance(properties.get("KeyPolicy"), dict):
            properties["KeyPolicy"] = json.dumps(properties["KeyPolicy"])
        return key_create(cls, resource_name, cloudformation_json, *args, **kw)

    def create_archive(cls: Any, resource_name: str, cloudformation_json: dict, *args: Any, **kw: Any) -> Any:
        properties = cloudformation_json["Properties"]
        if isinstance(properties.get("EventPattern"), dict):
            properties["EventPattern"] = json.dumps(properties["EventPattern"])
        return archive_create(cls, resource_name, cloudformation_json, *args, **kw)

    def create_state_machine(
        cls: Any, resource_name: str, cloudformation_json: dict, account_id: str, region_name: str, **kw: Any
    ) -> Any:
        properties = cloudformation_json["Properties"]
        definition = properties.get("DefinitionString")
        if definition is None and "Definition" in properties:
            definition = json.dumps(properties["Definition"])
        if definition is None and "DefinitionS3Location" in properties:
            from moto.s3.models import s3_backends

            location = properties["DefinitionS3Location"]
            key = s3_backends[account_id][_partition(region_name)].get_object(
                location["Bucket"], location["Key"]
            )
            definition = key.value.decode("utf-8")  # type: ignore[union-attr]
        for name, value in (properties.get("DefinitionSubstitutions") or {}).items():
            definition = (definition or "").replace("${" + name + "}", str(value))
        if definition is not None:
            properties["DefinitionString"] = definition
        return state_machine_create(cls, resource_name, cloudformation_json, account_id, region_name, **kw)

    def generate_name(resource_type: str, stack_name: str, logical_id: str) -> str:
        name = generate_resource_name(resource_type, stack_name, logical_id)
        if resource_type == "AWS::Events::Archive" and len(name) > 48:
            suffix = name.rsplit("-", 1)[1]
            name = f"{name[: 47 - len(suffix)]}-{suffix}"
        return name

    def version_getatt(self: Any, attribute_name: str) -> Any:
        if attribute_name == "Version":
            return str(self.version)
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        raise UnformattedGetAttTemplateException()

    Parameter.create_from_cloudformation_json = classmethod(create_parameter)  # type: ignore[method-assign,assignment]
    Archive.create_from_cloudformation_json = classmethod(create_archive)  # type: ignore[method-assign,assignment]
    Key.create_from_cloudformation_json = classmethod(create_key)  # type: ignore[method-assign,assignment]
    StateMachine.create_from_cloudformation_json = classmethod(create_state_machine)  # type: ignore[method-assign,assignment]
    parsing.generate_resource_name = generate_name
    LambdaVersion.get_cfn_attribute = version_getatt  # type: ignore[attr-defined]
    EventBus.physical_resource_id = property(lambda self: self.name)  # type: ignore[attr-defined]
    Archive.physical_resource_id = property(lambda self: self.name)  # type: ignore[attr-defined]
    _refresh_cfn_model_cache()


def _refresh_cfn_model_cache() -> None:
    # moto builds its type -> model map once from CloudFormationModel.__subclasses__() (lru_cache).
    from moto.cloudformation import parsing

    parsing.get_model_list.cache_clear()
    parsing.get_model_map.cache_clear()
    parsing.get_name_type_map.cache_clear()


def _partition(region_name: str) -> str:
    from moto.utilities.utils import get_partition as moto_get_partition

    return str(moto_get_partition(region_name))
