"""cdk-nag rule packs, always on: every synth (app.py, tests) runs them and fails on a finding; checkov
runs on the synthesized templates in ``make test`` (tests/infra/test_compliance.py).

Acknowledgements live next to the construct they concern, each naming the rule (and the
finding, where a rule reports several) with the reason it does not apply. checkov's are written into
the resource's ``Metadata.checkov.skip`` with their reason: the ones that hold for every resource of a
kind here (``CHECKOV_NOT_APPLICABLE``) by an aspect, the others by ``acknowledge_checkov`` beside the
construct.
"""

from __future__ import annotations

from typing import Final

import jsii
from aws_cdk import Acknowledgment, Aspects, CfnResource, IAspect, Validations
from aws_cdk import aws_sqs as sqs
from cdk_nag import AwsSolutionsChecks, ServerlessChecks
from constructs import IConstruct

# checkov findings that do not apply to any resource of the type in this architecture: (check, reason).
CHECKOV_NOT_APPLICABLE: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "AWS::Lambda::Function": (
        (
            "CKV_AWS_116",
            "No function is invoked asynchronously without a failure destination: queue consumers fail "
            "into their source queue's DLQ, Step Functions, API Gateway and function URLs invoke "
            "synchronously, and the scheduled reconciler has an OnFailure destination, which supersedes "
            "DeadLetterConfig (tests/infra/test_compliance.py checks every async invoker)",
        ),
        (
            "CKV_AWS_117",
            "The functions reach only AWS service endpoints and the partner APIs over HTTPS: a VPC would "
            "add NAT gateways or endpoints without a private resource to reach (attach one in a fork whose "
            "partner is private)",
        ),
        (
            "CKV_AWS_173",
            "Environment variables hold resource names and tunables, never secrets (the API key is read "
            "from Secrets Manager at run time); Lambda encrypts them at rest with its AWS managed key",
        ),
    ),
    "AWS::Logs::LogGroup": (
        (
            "CKV_AWS_158",
            "Encrypted at rest by CloudWatch Logs; payloads are kept out by configuration (API data trace "
            "off, state machine execution data off, handlers log ids and reasons), so a customer managed "
            "key is a fork-time choice for regulated data",
        ),
    ),
    "AWS::SecretsManager::Secret": (
        (
            "CKV_AWS_149",
            "Encrypted with the account's aws/secretsmanager key; only the functions granted "
            "secretsmanager:GetSecretValue read it, and no other account needs to (the reason for a CMK)",
        ),
    ),
    "AWS::ApiGateway::Stage": (
        (
            "CKV_AWS_120",
            "Nothing here may be cached: POSTs store a new request each, and GET /orders/{id} must show "
            "the order's latest status",
        ),
    ),
}
SSE_SQS_REASON: Final = (
    "Encrypted at rest with SSE-SQS (SqsManagedSseEnabled): checkov only recognizes KmsMasterKeyId, a "
    "false positive"
)


def apply_rule_packs(scope: IConstruct) -> None:
    Validations.of(scope).add_plugins(AwsSolutionsChecks(scope), ServerlessChecks(scope))
    Aspects.of(scope).add(CheckovAcknowledgements())


def acknowledge_checkov(resource: CfnResource, check: str, reason: str) -> None:
    """Skip one checkov ``check`` on ``resource`` (written to its template metadata) with the reason."""
    metadata = resource.get_metadata("checkov") or {"skip": []}
    if all(skip["id"] != check for skip in metadata["skip"]):
        metadata["skip"].append({"id": check, "comment": reason})
    resource.add_metadata("checkov", metadata)


@jsii.implements(IAspect)
class CheckovAcknowledgements:
    """Writes ``CHECKOV_NOT_APPLICABLE`` into every resource of those types, and the SSE-SQS note into
    every queue that has it (a queue without encryption is still reported)."""

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, CfnResource):
            return
        for check, reason in CHECKOV_NOT_APPLICABLE.get(node.cfn_resource_type, ()):
            acknowledge_checkov(node, check, reason)
        if isinstance(node, sqs.CfnQueue) and node.sqs_managed_sse_enabled is True:
            acknowledge_checkov(node, "CKV_AWS_27", SSE_SQS_REASON)


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one rule (``Rule`` or ``Rule[Finding]``) on ``scope`` and its children."""
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))
