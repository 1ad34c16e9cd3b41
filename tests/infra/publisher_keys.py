"""Can every AWS service that publishes into a topic or queue of the template use that target's key?

A service (CloudWatch for alarm actions, EventBridge for rule targets and their DLQs, SNS for
subscriptions and their DLQs) publishes into a KMS-encrypted target only if the key policy lets
the service principal decrypt and generate data keys. AWS-managed keys (``alias/aws/sns``,
``alias/aws/sqs``) cannot grant that, so publishing is refused, silently. Unencrypted and SSE-SQS
targets need nothing. Found by walking the synthesized template: no resource is named here.
"""

from __future__ import annotations

from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import Any

CLOUDWATCH, EVENTS, SNS = "cloudwatch.amazonaws.com", "events.amazonaws.com", "sns.amazonaws.com"
NEEDED_KEY_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")
TARGET_TYPES = ("AWS::SNS::Topic", "AWS::SQS::Queue")
ALARM_ACTION_LISTS = ("AlarmActions", "OKActions", "InsufficientDataActions")

Resources = dict[str, dict[str, Any]]


def publisher_key_violations(template: dict[str, Any]) -> list[str]:
    """Every (publisher -> target) whose target's key does not let the publishing service use it."""
    resources: Resources = template.get("Resources", {})
    problems = []
    for source, service, target, strict in _publications(resources):
        target_id = _logical_id(target)
        if target_id is None or resources.get(target_id, {}).get("Type") not in TARGET_TYPES:
            if strict:
                problems.append(f"{source}: action {target!r} is not a topic of this template; cannot verify")
            continue
        problem = _key_problem(resources, target_id, service)
        if problem:
            problems.append(f"{source} -> {target_id}: {problem}")
    return problems


def count_publications(template: dict[str, Any]) -> dict[str, int]:
    """How many publications per service the walk found (a walk that finds nothing proves nothing)."""
    counts: dict[str, int] = {}
    for _, service, _, _ in _publications(template.get("Resources", {})):
        counts[service] = counts.get(service, 0) + 1
    return counts


def _publications(resources: Resources) -> Iterator[tuple[str, str, Any, bool]]:
    """(publisher, service principal, target reference, must the target be a topic of this template)."""
    for logical_id, resource in resources.items():
        kind, props = resource["Type"], resource.get("Properties", {})
        if kind in ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm"):
            for actions in ALARM_ACTION_LISTS:
                for action in props.get(actions, []):
                    yield f"{logical_id}.{actions}", CLOUDWATCH, action, True
        elif kind == "AWS::Events::Rule":
            for target in props.get("Targets", []):
                yield f"{logical_id} target {target.get('Id')}", EVENTS, target["Arn"], False
                if "DeadLetterConfig" in target:
                    dlq = target["DeadLetterConfig"]["Arn"]
                    yield f"{logical_id} target {target.get('Id')} DLQ", EVENTS, dlq, False
        elif kind == "AWS::SNS::Subscription":
            if props.get("Protocol") == "sqs":
                yield logical_id, SNS, props["Endpoint"], False
            if "RedrivePolicy" in props:
                yield f"{logical_id} DLQ", SNS, props["RedrivePolicy"]["deadLetterTargetArn"], False


def _logical_id(reference: Any) -> str | None:
    if isinstance(reference, dict):
        if "Ref" in reference:
            return str(reference["Ref"])
        if "Fn::GetAtt" in reference:
            return str(reference["Fn::GetAtt"][0])
    return None


def _key_problem(resources: Resources, target_id: str, service: str) -> str | None:
    key = resources[target_id].get("Properties", {}).get("KmsMasterKeyId")
    if key is None:
        return None  # unencrypted or SSE-SQS: any publisher the resource policy allows can write
    key_id = _logical_id(key)
    if key_id is not None and resources.get(key_id, {}).get("Type") == "AWS::KMS::Alias":
        key_id = _logical_id(resources[key_id]["Properties"]["TargetKeyId"])
    if key_id is None or resources.get(key_id, {}).get("Type") != "AWS::KMS::Key":
        return (
            f"encrypted with {key!r}, a key outside this template (AWS-managed?) that cannot grant {service}"
        )
    statements = resources[key_id]["Properties"]["KeyPolicy"]["Statement"]
    missing = [action for action in NEEDED_KEY_ACTIONS if not _allows(statements, service, action)]
    if missing:
        return f"key {key_id} does not allow {service} {missing}"
    return None


def _allows(statements: list[dict[str, Any]], service: str, action: str) -> bool:
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal", {})
        services = principal.get("Service", []) if isinstance(principal, dict) else []
        if service not in (services if isinstance(services, list) else [services]):
            continue
        actions = statement.get("Action", [])
        if any(fnmatchcase(action.lower(), pattern.lower()) for pattern in _as_list(actions)):
            return True
    return False


def _as_list(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value]
