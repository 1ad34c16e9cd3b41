"""A queue consumer's handler under test (``lambdas/shared/queue_consumer.py``), as both consumers' tests run it.

Real pieces: the handler module (cold-start init included), Powertools batch/idempotency/circuit breaker on
moto DynamoDB (tables ``idempotency`` and ``circuits``), the DLQ on moto SQS, the API key in moto Secrets
Manager, and the partner twin over HTTP.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TypeVar

import boto3
import pytest

from localcloud.fault_dependency import FaultDependency
from tests.unit.helpers import (
    REGION,
    BreakerTable,
    FakeLambdaContext,
    count_secret_reads,
    create_key_table,
    import_fresh,
    queue_consumer_env,
)

API_KEY = "partner-key-123"


def sqs_message(
    body: Any, *, queue_arn: str, message_id: str | None = None, attributes: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """One SQS record as Lambda's event source delivers it; ``attributes``: String message attributes."""
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": "handle",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1767225600000"},
        "messageAttributes": {
            name: {"stringValue": value, "stringListValues": [], "binaryListValues": [], "dataType": "String"}
            for name, value in (attributes or {}).items()
        },
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


@dataclass
class ConsumerUnderTest:
    module: ModuleType
    twin: FaultDependency
    sqs: Any
    dlq_url: str
    breaker: BreakerTable
    capsys: pytest.CaptureFixture[str]
    secret_reads: list[str] = field(default_factory=list)

    def invoke(self, *records: dict[str, Any], remaining_ms: int = 30_000, context: Any = None) -> list[str]:
        """Run one invocation; return the message ids reported as failed."""
        context = context or FakeLambdaContext(remaining_ms=remaining_ms)
        response = self.module.handler({"Records": list(records)}, context)
        return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]

    def output(self) -> str:
        return self.capsys.readouterr().out


C = TypeVar("C", bound=ConsumerUnderTest)


def start_consumer(
    kind: type[C],
    handler: str,
    twin: FaultDependency,
    *,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    dlq_name: str,
    service: str,
    env: Mapping[str, str],
) -> C:
    """Its tables, DLQ and API key secret, its environment (``queue_consumer_env`` + ``env``), then a cold
    start of ``handler`` that counts the secret reads reaching Secrets Manager."""
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    create_key_table(dynamodb, "idempotency")
    create_key_table(dynamodb, "circuits")
    sqs = boto3.client("sqs", region_name=REGION)
    dlq_url = sqs.create_queue(QueueName=dlq_name)["QueueUrl"]
    secret_arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="partner-api-key", SecretString=API_KEY
    )["ARN"]
    variables = queue_consumer_env(
        twin.base_url + "/", secret_arn=secret_arn, dlq_url=dlq_url, service=service, **env
    )
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    secret_reads = count_secret_reads(monkeypatch)
    return kind(
        module=import_fresh(handler),
        twin=twin,
        sqs=sqs,
        dlq_url=dlq_url,
        breaker=BreakerTable(name="circuits", client=dynamodb),
        capsys=capsys,
        secret_reads=secret_reads,
    )
