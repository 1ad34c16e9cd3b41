"""SQS-triggered starter: one order_fulfilment execution per message, at most once per idempotency key.

Environment:
    STATE_MACHINE_ARN   the order_fulfilment state machine.

The execution name is derived from the message's idempotency key (message attribute ``IdempotencyKey``,
else the SQS message id), so a redelivered message, or a second message for the same key, cannot start
the work twice: Step Functions refuses a second Standard execution with the same name for 90 days
(``ExecutionAlreadyExists``, counted here as success) and answers a repeat with the same name and input
while the first still runs with that same execution.

Execution input: ``{"idempotencyKey", "messageId", "order": <message body as JSON>}``.

Partial batch responses (Powertools ``BatchProcessor``): only the messages that could not be started are
returned to the queue; the event source mapping must have ``ReportBatchItemFailures`` enabled. A body that
is not JSON fails its record every time, so the queue's redrive policy moves it to the DLQ.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

IDEMPOTENCY_KEY_ATTRIBUTE = "IdempotencyKey"
MAX_NAME_LENGTH = 80
DIGEST_LENGTH = 24  # hex characters of SHA-256: 96 bits
# Step Functions forbids whitespace, brackets, wildcards, many punctuation and control characters in
# names, and recommends ASCII letters, digits, '-' and '_' only (else CloudWatch logging breaks). Keep those.
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")

logger = Logger(service="workflow-starter")
processor = BatchProcessor(event_type=EventType.SQS)


class ConfigurationError(RuntimeError):
    """The function's environment is incomplete."""


def execution_name(idempotency_key: str) -> str:
    """A valid, deterministic Step Functions execution name for an idempotency key.

    A key that is already a safe name (ASCII letters, digits, '-', '_'; 1..80 characters) is used as is,
    so names stay searchable. Any other key becomes ``<sanitized prefix>-<sha256 digest of the key>``,
    at most 80 characters: two different keys never share a name, even when they sanitize alike.
    """
    if not idempotency_key:
        raise ValueError("idempotency key must not be empty")
    if len(idempotency_key) <= MAX_NAME_LENGTH and not _UNSAFE.search(idempotency_key):
        return idempotency_key
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:DIGEST_LENGTH]
    prefix = _UNSAFE.sub("-", idempotency_key).strip("-")[: MAX_NAME_LENGTH - DIGEST_LENGTH - 1]
    return f"{prefix}-{digest}" if prefix else digest


def idempotency_key_of(record: SQSRecord) -> str:
    attribute = record.message_attributes[IDEMPOTENCY_KEY_ATTRIBUTE]  # None when absent (.get is raw)
    value = attribute.string_value if attribute is not None else None
    return value.strip() if value and value.strip() else record.message_id


@lru_cache(maxsize=1)
def _client() -> Any:
    return boto3.client("stepfunctions", config=Config(retries={"mode": "standard", "max_attempts": 3}))


def _state_machine_arn() -> str:
    arn = os.environ.get("STATE_MACHINE_ARN", "").strip()
    if not arn:
        raise ConfigurationError("missing required environment variable STATE_MACHINE_ARN")
    return arn


def start_fulfilment(record: SQSRecord) -> str:
    """Start (or recognise as already started) the execution for one message; return its name."""
    key = idempotency_key_of(record)
    name = execution_name(key)
    order = json.loads(record.body)  # not JSON: raise, the record fails and ends in the DLQ
    payload = json.dumps(
        {"idempotencyKey": key, "messageId": record.message_id, "order": order}, sort_keys=True
    )
    client = _client()
    try:
        response = client.start_execution(stateMachineArn=_state_machine_arn(), name=name, input=payload)
    except client.exceptions.ExecutionAlreadyExists:
        logger.info(
            "duplicate: execution already exists",
            extra={"execution_name": name, "message_id": record.message_id},
        )
        return name
    logger.info("started", extra={"execution_arn": response["executionArn"], "message_id": record.message_id})
    return name


def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    _state_machine_arn()  # a misconfigured function fails the whole batch loudly, not record by record
    return process_partial_response(
        event=event, record_handler=start_fulfilment, processor=processor, context=context
    )
