"""Which resources the commands act on: discovered from a CloudFormation stack, or from the account.

From a stack (``--stack``): its outputs (stacks/service_stack.py, stacks/event_fanout.py) and its resources
(queues, rules, buses, tables). CDK appends an 8-character hash to the logical ids of resources and of
outputs defined inside constructs (``EventsFulfilmentDeadLetterQueueUrlBDA18F38``); lookups accept it.

Without a stack: every queue whose name starts with ``--queue-prefix`` (all queues of the region when
omitted) and the rules on each ``--bus``.

A dead-letter queue is any queue that is the redrive target of another queue (its RedrivePolicy), or the
DeadLetterConfig of an EventBridge rule target. One queue can be both (the fan-out subscribers' DLQs are).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ops.aws import Aws, error_code, queue_name_of_arn
from ops.errors import UsageError

_CDK_HASH = re.compile(r"[0-9A-F]{8}$")
_DLQ_OUTPUT = re.compile(r"^(?P<prefix>[A-Za-z0-9]+?)DeadLetterQueueUrl(?:[0-9A-F]{8})?$")
TABLE_TYPES = ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable")
CIRCUIT_TABLE_OUTPUT = "CircuitTableName"
CIRCUIT_TABLE_LOGICAL_PREFIX = "CircuitBreakerCircuits"


def _all_buses(events: Any) -> list[str]:
    names: list[str] = []
    kwargs: dict[str, Any] = {}
    while True:
        page = events.list_event_buses(**kwargs)
        names += [bus["Name"] for bus in page.get("EventBuses", [])]
        if not page.get("NextToken"):
            return names
        kwargs["NextToken"] = page["NextToken"]


def _unique(first: list[str], more: Callable[[], list[str]]) -> Iterator[str]:
    """``first``, then (only if needed) the rest of ``more()``, each name once."""
    seen: set[str] = set()
    for name in first:
        if name not in seen:
            seen.add(name)
            yield name
    for name in more():
        if name not in seen:
            seen.add(name)
            yield name


def kebab(camel: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", camel).lower()


def without_hash(logical_id: str) -> str:
    return _CDK_HASH.sub("", logical_id)


@dataclass(frozen=True)
class RuleTarget:
    bus: str
    rule_name: str
    rule_arn: str
    target_id: str
    target_arn: str
    dead_letter_arn: str | None


@dataclass
class DeadLetterQueue:
    url: str
    arn: str
    label: str
    # SQS queues whose redrive policy moves messages here (what StartMessageMoveTask can move back to).
    source_urls: list[str] = field(default_factory=list)
    # EventBridge rule targets whose DeadLetterConfig is this queue.
    rule_targets: list[RuleTarget] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.url.rstrip("/").split("/")[-1]

    @property
    def kinds(self) -> list[str]:
        kinds = []
        if self.source_urls:
            kinds.append("sqs-redrive")
        if self.rule_targets:
            kinds.append("eventbridge-target")
        return kinds


@dataclass
class Inventory:
    aws: Aws
    stack: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    # (logical id, type, physical id)
    resources: list[tuple[str, str, str]] = field(default_factory=list)
    queue_urls: list[str] = field(default_factory=list)
    buses: list[str] = field(default_factory=list)
    rules: list[tuple[str, str]] = field(default_factory=list)  # (bus, rule name)

    # ------------------------------------------------------------------------------ construction

    @classmethod
    def from_stack(cls, aws: Aws, stack: str) -> Inventory:
        cfn = aws.client("cloudformation")
        try:
            described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
        except Exception as error:
            if error_code(error) == "ValidationError":
                raise UsageError(f"no CloudFormation stack {stack!r} in {aws.region}") from None
            raise
        outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
        resources: list[tuple[str, str, str]] = []
        for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack):
            for summary in page["StackResourceSummaries"]:
                physical = summary.get("PhysicalResourceId")
                if physical:
                    resources.append((summary["LogicalResourceId"], summary["ResourceType"], physical))
        inventory = cls(aws=aws, stack=stack, outputs=outputs, resources=resources)
        inventory.queue_urls = [p for _, t, p in resources if t == "AWS::SQS::Queue"]
        inventory.buses = [p for _, t, p in resources if t == "AWS::Events::EventBus"]
        inventory.rules = [inventory._locate_rule(p) for _, t, p in resources if t == "AWS::Events::Rule"]
        return inventory

    @classmethod
    def from_account(
        cls, aws: Aws, *, queue_prefix: str | None = None, buses: list[str] | None = None
    ) -> Inventory:
        sqs = aws.client("sqs")
        urls: list[str] = []
        kwargs = {"QueueNamePrefix": queue_prefix} if queue_prefix else {}
        for page in sqs.get_paginator("list_queues").paginate(**kwargs):
            urls += page.get("QueueUrls", [])
        events = aws.client("events")
        rules: list[tuple[str, str]] = []
        for bus in buses or []:
            for page in events.get_paginator("list_rules").paginate(EventBusName=bus):
                rules += [(bus, rule["Name"]) for rule in page.get("Rules", [])]
        return cls(aws=aws, queue_urls=urls, buses=list(buses or []), rules=rules)

    def _locate_rule(self, physical_id: str) -> tuple[str, str]:
        # CloudFormation names a rule on a custom bus "bus|rule"; older stacks (and moto) just "rule".
        if "|" in physical_id:
            bus, name = physical_id.split("|", 1)
            return bus, name
        events = self.aws.client("events")
        candidates = [*self.buses, "default"]
        for bus in _unique(candidates, lambda: _all_buses(events)):
            try:
                events.describe_rule(Name=physical_id, EventBusName=bus)
            except Exception as error:
                if error_code(error) == "ResourceNotFoundException":
                    continue
                raise
            return bus, physical_id
        raise UsageError(f"rule {physical_id} of stack {self.stack} is on none of its buses")

    # ------------------------------------------------------------------------------ lookups

    def output(self, prefix: str) -> str | None:
        """The output ``prefix`` (exactly, or followed by CDK's hash); None if absent, error if ambiguous."""
        matches = [
            value for key, value in self.outputs.items() if key == prefix or without_hash(key) == prefix
        ]
        if len(matches) > 1:
            raise UsageError(f"several outputs of {self.stack} match {prefix}: name the resource explicitly")
        return matches[0] if matches else None

    def require_output(self, prefix: str, what: str, option: str) -> str:
        if self.stack is None:
            raise UsageError(f"{what}: pass {option}, or --stack to read it from the stack outputs")
        value = self.output(prefix)
        if value is None:
            raise UsageError(f"stack {self.stack} has no output {prefix}: pass {option}")
        return value

    def circuit_table(self) -> str:
        if self.stack is None:
            raise UsageError("circuit table: pass --table, or --stack to find it in the stack")
        value = self.output(CIRCUIT_TABLE_OUTPUT)
        if value:
            return value
        tables = [
            p
            for logical, t, p in self.resources
            if t in TABLE_TYPES and logical.startswith(CIRCUIT_TABLE_LOGICAL_PREFIX)
        ]
        if len(tables) != 1:
            raise UsageError(f"stack {self.stack}: found {len(tables)} circuit tables; pass --table")
        return tables[0]

    def _labels(self) -> dict[str, str]:
        """queue URL -> a short name for it (from the stack's outputs and logical ids)."""
        labels = {
            p: kebab(without_hash(logical)) for logical, t, p in self.resources if t == "AWS::SQS::Queue"
        }
        for key, value in self.outputs.items():
            match = _DLQ_OUTPUT.match(key)
            if match:
                labels[value] = kebab(match.group("prefix"))
        return labels

    # ------------------------------------------------------------------------------ dead-letter queues

    def dead_letter_queues(self) -> list[DeadLetterQueue]:
        sqs = self.aws.client("sqs")
        arns: dict[str, str] = {}  # arn -> url
        redrive: dict[str, list[str]] = {}  # dlq arn -> source urls
        for url in self.queue_urls:
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn", "RedrivePolicy"])[
                "Attributes"
            ]
            arns[attributes["QueueArn"]] = url
            policy = attributes.get("RedrivePolicy")
            if policy:
                redrive.setdefault(json.loads(policy)["deadLetterTargetArn"], []).append(url)
        targets: dict[str, list[RuleTarget]] = {}
        for target in self.rule_targets():
            if target.dead_letter_arn:
                targets.setdefault(target.dead_letter_arn, []).append(target)
        labels = self._labels()
        found = []
        for arn in sorted({*redrive, *targets}):
            url = arns.get(arn) or self.queue_url_of_arn(arn)
            found.append(
                DeadLetterQueue(
                    url=url,
                    arn=arn,
                    label=labels.get(url) or queue_name_of_arn(arn)[0],
                    source_urls=sorted(redrive.get(arn, [])),
                    rule_targets=targets.get(arn, []),
                )
            )
        return sorted(found, key=lambda d: d.label)

    def rule_targets(self) -> list[RuleTarget]:
        events = self.aws.client("events")
        found = []
        for bus, name in self.rules:
            arn = events.describe_rule(Name=name, EventBusName=bus)["Arn"]
            for page in events.get_paginator("list_targets_by_rule").paginate(Rule=name, EventBusName=bus):
                for target in page.get("Targets", []):
                    found.append(
                        RuleTarget(
                            bus=bus,
                            rule_name=name,
                            rule_arn=arn,
                            target_id=target["Id"],
                            target_arn=target["Arn"],
                            dead_letter_arn=(target.get("DeadLetterConfig") or {}).get("Arn"),
                        )
                    )
        return found

    def queue_url_of_arn(self, arn: str) -> str:
        name, account = queue_name_of_arn(arn)
        return str(
            self.aws.client("sqs").get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        )

    def resolve_queue(self, ref: str) -> str:
        """A queue URL from a URL, an ARN, a label shown by ``dlq list`` (with --stack), or a queue name."""
        if ref.startswith(("http://", "https://")):
            return ref
        if ref.startswith("arn:"):
            return self.queue_url_of_arn(ref)
        if self.stack is not None:
            by_label = [url for url, label in self._labels().items() if label == ref]
            if len(by_label) == 1:
                return by_label[0]
        try:
            return str(self.aws.client("sqs").get_queue_url(QueueName=ref)["QueueUrl"])
        except Exception as error:
            if "NonExistentQueue" in error_code(error) or error_code(error) == "QueueDoesNotExist":
                raise UsageError(
                    f"no queue {ref!r} (give a URL, an ARN, a name or a label from `dlq list`)"
                ) from None
            raise
