"""Synthesize the CDK app and deploy its template into the emulator, the way ``cdk deploy`` would.

``cdk deploy`` needs the bootstrap stack's version parameter and uploads every asset to the bootstrap
bucket before it creates the stack from the template's S3 URL; this module does the same against the
emulator, then reads back what was created (physical ids, attributes), so the rest of the local cloud
runs on what the template declared, not on a hand-made copy of it.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcloud.emulator import Emulator

BOOTSTRAP_QUALIFIER = "hnb659fds"
BOOTSTRAP_VERSION = "30"
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]


class DeployError(RuntimeError):
    """The emulator did not create the stack."""


@dataclass(frozen=True)
class Synthesized:
    """One synthesized stack: its template and asset manifest, as ``cdk synth`` wrote them."""

    outdir: Path
    stack_name: str
    template: dict[str, Any]
    assets: dict[str, Any]
    context: Mapping[str, Any]

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.template["Resources"]

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == resource_type}

    @classmethod
    def load(cls, outdir: str | Path) -> Synthesized:
        """A cloud assembly written earlier (by ``synthesize`` or ``cdk synth``) with exactly one stack."""
        target = Path(outdir)
        manifest = json.loads((target / "manifest.json").read_text())
        stacks = [
            name
            for name, artifact in manifest["artifacts"].items()
            if artifact.get("type") == "aws:cloudformation:stack"
        ]
        if len(stacks) != 1:
            raise DeployError(f"{target} holds {len(stacks)} stacks; the local cloud deploys exactly one")
        context_file = target / CONTEXT_FILE
        context = json.loads(context_file.read_text()) if context_file.exists() else {}
        return cls(
            outdir=target,
            stack_name=stacks[0],
            template=json.loads((target / f"{stacks[0]}.template.json").read_text()),
            assets=json.loads((target / f"{stacks[0]}.assets.json").read_text()),
            context=context,
        )


# The context a local synth used, kept next to the assembly so a later process can reuse both.
CONTEXT_FILE = "localcloud-context.json"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROJECT_NODE = PROJECT_ROOT / "node_modules" / ".bin"


def cdk_context() -> dict[str, Any]:
    """cdk.json's context, as the CDK CLI reads it."""
    return dict(json.loads((PROJECT_ROOT / "cdk.json").read_text())["context"])


def use_project_node() -> None:
    """Put the Node.js that ``npm ci`` pinned (package.json) first on PATH, as the Makefile does.

    aws-cdk-lib starts its jsii runtime with whatever ``node`` PATH finds first: a synth started outside
    make (``python -m localcloud.demo``, pytest, the bench) must not fall back to an unsupported system
    Node. Call it before anything imports aws_cdk.
    """
    if PROJECT_NODE.is_dir() and os.environ.get("PATH", "").split(os.pathsep)[0] != str(PROJECT_NODE):
        os.environ["PATH"] = os.pathsep.join([str(PROJECT_NODE), os.environ.get("PATH", "")])


def synthesize(context: Mapping[str, Any] | None = None, outdir: str | Path | None = None) -> Synthesized:
    """``build_app(context, outdir).synth()``; ``context`` None reads cdk.json as the CLI does.

    ``outdir`` None synthesizes into a new temporary directory, which the caller then owns (and removes).
    """
    use_project_node()
    from stacks.application import build_app

    target = Path(outdir) if outdir is not None else Path(tempfile.mkdtemp(prefix="localcloud-cdk.out-"))
    if context is None:
        context = cdk_context()
    app, stack = build_app(context, outdir=str(target))
    app.synth()
    name = stack.stack_name
    (target / CONTEXT_FILE).write_text(json.dumps(dict(context)))
    return Synthesized(
        outdir=target,
        stack_name=name,
        template=json.loads((target / f"{name}.template.json").read_text()),
        assets=json.loads((target / f"{name}.assets.json").read_text()),
        context=dict(context),
    )


@dataclass(frozen=True)
class StackResource:
    logical_id: str
    type: str
    physical_id: str


@dataclass
class DeployedStack:
    """The stack as the emulator created it."""

    emulator: Emulator
    synthesized: Synthesized
    stack_name: str
    resources: dict[str, StackResource]
    outputs: dict[str, str]
    not_emulated: dict[str, str] = field(default_factory=dict)  # logical id -> type moto skipped

    @property
    def template(self) -> dict[str, Any]:
        return self.synthesized.template

    def physical_id(self, logical_id: str) -> str:
        try:
            return self.resources[logical_id].physical_id
        except KeyError:
            raise KeyError(f"{logical_id} was not created by the emulator") from None

    def of_type(self, resource_type: str) -> dict[str, StackResource]:
        return {k: r for k, r in self.resources.items() if r.type == resource_type}

    def logical_id_of(self, physical_id: str) -> str | None:
        for resource in self.resources.values():
            if resource.physical_id == physical_id:
                return resource.logical_id
        return None

    # -- intrinsic functions, resolved against what the emulator created ---------------------------

    def resolve(self, value: Any) -> Any:
        """Resolve ``Ref`` / ``Fn::GetAtt`` / ``Fn::Join`` / ``Fn::Select`` / ``Fn::Split`` / ``Fn::Sub``."""
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self._ref(argument)
            if key == "Fn::GetAtt":
                logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self.get_att(logical_id, attribute)
            if key == "Fn::Join":
                separator, items = argument
                return str(separator).join(str(self.resolve(item)) for item in items)
            if key == "Fn::Select":
                index, items = argument
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                separator, text = argument
                return str(self.resolve(text)).split(separator)
            if key == "Fn::Sub":
                return self._sub(argument)
        return {k: self.resolve(v) for k, v in value.items()}

    def _ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.emulator.region,
            "AWS::AccountId": self.emulator.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.stack_name,
            "AWS::NoValue": None,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.template.get("Parameters", {}):
            return self.template["Parameters"][name].get("Default")
        return self.physical_id(name)

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        resolved = {k: self.resolve(v) for k, v in variables.items()}

        def replace(token: str) -> str:
            if token in resolved:
                return str(resolved[token])
            if "." in token:
                logical_id, attribute = token.split(".", 1)
                return str(self.get_att(logical_id, attribute))
            return str(self._ref(token))

        # ``${!Literal}`` is the escape for a literal ``${Literal}``.
        return re.sub(r"\$\{(!?)([^}]*)\}", lambda m: f"${{{m[2]}}}" if m[1] else replace(m[2]), text)

    def get_att(self, logical_id: str, attribute: str) -> Any:
        """``Fn::GetAtt`` for the resource types the local cloud reads attributes of."""
        resource = self.resources.get(logical_id)
        if resource is None:
            raise KeyError(f"{logical_id} was not created by the emulator")
        physical = resource.physical_id
        if resource.type == "AWS::SQS::Queue":
            if attribute == "QueueUrl":
                return physical
            if attribute == "QueueName":
                return physical.rstrip("/").rsplit("/", 1)[-1]
            if attribute == "Arn":
                return self.queue_attributes(physical)["QueueArn"]
        if resource.type in ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable") and attribute == "Arn":
            table = self.emulator.client("dynamodb").describe_table(TableName=physical)["Table"]
            return table["TableArn"]
        if resource.type == "AWS::Lambda::Function" and attribute == "Arn":
            return self.emulator.client("lambda").get_function(FunctionName=physical)["Configuration"][
                "FunctionArn"
            ]
        if resource.type == "AWS::Events::EventBus" and attribute in ("Arn", "Name"):
            bus = self.emulator.client("events").describe_event_bus(Name=physical)
            return bus["Arn"] if attribute == "Arn" else bus["Name"]
        if resource.type == "AWS::S3::Bucket" and attribute in ("Arn", "DomainName", "RegionalDomainName"):
            return {
                "Arn": f"arn:aws:s3:::{physical}",
                "DomainName": f"{physical}.s3.amazonaws.com",
                "RegionalDomainName": f"{physical}.s3.{self.emulator.region}.amazonaws.com",
            }[attribute]
        if resource.type == "AWS::Lambda::Url" and attribute == "FunctionUrl":
            url = self.emulator.client("lambda").get_function_url_config(FunctionName=physical)["FunctionUrl"]
            return str(url).rstrip("/") + "/"
        if resource.type == "AWS::StepFunctions::StateMachine" and attribute == "Name":
            return physical.rsplit(":", 1)[-1]
        if resource.type == "AWS::IAM::Role" and attribute == "Arn":
            return self.emulator.client("iam").get_role(RoleName=physical)["Role"]["Arn"]
        raise KeyError(f"Fn::GetAtt {logical_id}.{attribute} ({resource.type}) is not resolved locally")

    def queue_attributes(self, queue_url: str) -> dict[str, str]:
        response = self.emulator.client("sqs").get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["All"]
        )
        return dict(response["Attributes"])


def bootstrap(emulator: Emulator) -> str:
    """What ``cdk bootstrap`` leaves behind that ``cdk deploy`` checks: the version parameter and bucket."""
    emulator.client("ssm").put_parameter(
        Name=f"/cdk-bootstrap/{BOOTSTRAP_QUALIFIER}/version",
        Value=BOOTSTRAP_VERSION,
        Type="String",
        Overwrite=True,
    )
    bucket = f"cdk-{BOOTSTRAP_QUALIFIER}-assets-{emulator.account_id}-{emulator.region}"
    s3 = emulator.client("s3")
    if emulator.region == "us-east-1":
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": emulator.region})
    return bucket


def _stand_in_layer(emulator: Emulator, name: str, why: str) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README", f"local stand-in for an AWS-published layer: {why}\n")
    layer = emulator.client("lambda").publish_layer_version(
        LayerName=re.sub(r"[^A-Za-z0-9_-]", "-", name),
        Description="local stand-in for an AWS-published layer",
        Content={"ZipFile": buffer.getvalue()},
    )
    return str(layer["LayerVersionArn"])


def _fis_extension_layer(emulator: Emulator, match: re.Match[str]) -> str:
    """The FIS extension never runs locally: the local cloud injects faults with its own partner twin."""
    return _stand_in_layer(emulator, match.group("layer"), "the FIS extension is not run by the local cloud")


def _powertools_layer(emulator: Emulator, match: re.Match[str]) -> str:
    """Local functions run on the project's environment, which has the same pinned Powertools."""
    name = f"powertools-{match.group('architecture')}-{match.group('runtime')}"
    return _stand_in_layer(emulator, name, "local functions import Powertools from the project's environment")


# AWS-published SSM parameters a template may resolve at deploy time, and how to stand them in locally.
AWS_PUBLIC_PARAMETERS: list[tuple[re.Pattern[str], Callable[[Emulator, re.Match[str]], str]]] = [
    (re.compile(r"^/aws/service/fis/lambda-extension/(?P<layer>[^/]+)/"), _fis_extension_layer),
    (
        re.compile(r"^/aws/service/powertools/python/(?P<architecture>[^/]+)/(?P<runtime>[^/]+)/"),
        _powertools_layer,
    ),
]


def seed_public_parameters(emulator: Emulator, synthesized: Synthesized) -> dict[str, str]:
    """Give the emulator the AWS-published SSM parameters the template's parameters default to."""
    from localcloud.moto_patches.ssm_public_parameters import put_aws_public_parameter

    ssm = emulator.client("ssm")
    seeded = {}
    for parameter in synthesized.template.get("Parameters", {}).values():
        default = str(parameter.get("Default", ""))
        if not parameter.get("Type", "").startswith("AWS::SSM::Parameter::") or not default.startswith(
            "/aws/"
        ):
            continue
        try:
            ssm.get_parameter(Name=default)
            continue
        except ssm.exceptions.ParameterNotFound:
            pass
        for pattern, stand_in in AWS_PUBLIC_PARAMETERS:
            match = pattern.match(default)
            if match:
                value = stand_in(emulator, match)
                put_aws_public_parameter(emulator.account_id, emulator.region, default, value)
                seeded[default] = value
                break
        else:
            raise DeployError(
                f"the template resolves the AWS-published SSM parameter {default}, which the emulator lacks; "
                "add a stand-in to localcloud.deploy.AWS_PUBLIC_PARAMETERS"
            )
    return seeded


def _placeholders(text: str, emulator: Emulator) -> str:
    return (
        text.replace("${AWS::AccountId}", emulator.account_id)
        .replace("${AWS::Region}", emulator.region)
        .replace("${AWS::Partition}", "aws")
    )


_ZIP_CACHE: dict[tuple[str, str], bytes] = {}


def _zip_directory(directory: Path) -> bytes:
    # Asset directories are content-addressed (asset.<hash>), so a process zips each one once.
    cache_key = (str(directory.resolve()), directory.name)
    if cache_key in _ZIP_CACHE:
        return _ZIP_CACHE[cache_key]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(directory).as_posix())
    _ZIP_CACHE[cache_key] = buffer.getvalue()
    return _ZIP_CACHE[cache_key]


def publish_assets(emulator: Emulator, synthesized: Synthesized) -> str | None:
    """Upload every file asset (zipping directories) as ``cdk-assets`` does.

    Returns the S3 URL of the stack template itself when it is one of the assets (it is with the default
    synthesizer), which is what ``cdk deploy`` passes to CloudFormation.
    """
    s3 = emulator.client("s3")
    template_url = None
    for asset in synthesized.assets.get("files", {}).values():
        source = synthesized.outdir / asset["source"]["path"]
        if asset["source"].get("packaging") == "zip" or source.is_dir():
            body = _zip_directory(source)
        else:
            body = source.read_bytes()
        for destination in asset["destinations"].values():
            bucket = _placeholders(destination["bucketName"], emulator)
            key = _placeholders(destination["objectKey"], emulator)
            s3.put_object(Bucket=bucket, Key=key, Body=body)
            if asset["source"]["path"] == f"{synthesized.stack_name}.template.json":
                template_url = f"https://{bucket}.s3.{emulator.region}.amazonaws.com/{key}"
    if synthesized.assets.get("dockerImages"):
        raise DeployError("the template has Docker image assets; the local cloud has no Docker")
    return template_url


def deploy(emulator: Emulator, synthesized: Synthesized, *, stack_name: str | None = None) -> DeployedStack:
    """Bootstrap, publish assets, ``CreateStack`` from the template's S3 URL, read back the resources."""
    from moto.cloudformation import parsing

    bootstrap(emulator)
    seed_public_parameters(emulator, synthesized)
    template_url = publish_assets(emulator, synthesized)
    name = stack_name or synthesized.stack_name
    cloudformation = emulator.client("cloudformation", retries=1)
    arguments: dict[str, Any] = {"StackName": name, "Capabilities": CAPABILITIES}
    if template_url is not None:
        arguments["TemplateURL"] = template_url
    else:
        arguments["TemplateBody"] = json.dumps(synthesized.template)
    try:
        cloudformation.create_stack(**arguments)
    except Exception as exc:  # moto raises inside CreateStack; surface it with the stack name
        raise DeployError(f"CreateStack {name} failed on the emulator: {exc}") from exc
    stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise DeployError(f"stack {name} is {stack['StackStatus']}: {stack.get('StackStatusReason')}")
    resources: dict[str, StackResource] = {}
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=name):
        for summary in page["StackResourceSummaries"]:
            resources[summary["LogicalResourceId"]] = StackResource(
                summary["LogicalResourceId"], summary["ResourceType"], summary.get("PhysicalResourceId", "")
            )
    supported = parsing.get_model_map()
    not_emulated = {
        logical_id: resource["Type"]
        for logical_id, resource in synthesized.resources.items()
        if resource["Type"] not in supported and resource["Type"] not in parsing.NULL_MODELS
    }
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}
    deployed = DeployedStack(emulator, synthesized, name, resources, outputs, not_emulated)
    if synthesized.of_type("AWS::StepFunctions::StateMachine"):
        from localcloud.moto_patches.stack_state_machines import register_stack_state_machines_for_execution

        register_stack_state_machines_for_execution(emulator.account_id, emulator.region)
    return deployed
