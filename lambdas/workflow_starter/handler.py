"""SQS-triggered starter: one order_fulfilment execution per PaymentReceived event, at most once per key.

The queue is the ``fulfilment`` fan-out subscription (``stacks/event_fanout.py``): every message body is
an EventBridge event (envelope: ``id``, ``detail-type``, ``source``, ``detail``, ``replay-name`` on
replays). ``lambdas.shared.events.parse_event`` validates envelope, source and detail against the
contract; only ``PaymentReceived`` starts fulfilment.

Execution input::

    {"idempotencyKey": "<event idempotency key>", "messageId": "<SQS id>",
     "event": {"id", "detailType", "source", "time", "replayName"?},
     "order": {"orderId", "amountCents", "currency", "paymentId"},
     "circuitWait": {"seconds": <CIRCUIT_WAIT_SECONDS>, "until": <now + CIRCUIT_WAIT_LIMIT_SECONDS, unix>}}

``order`` is what the Charge/Ship/Notify tasks read (``lambdas.fulfilment.tasks.FulfilmentOrder``).
PaymentReceived has no ``customerId``, so the order carries none.

The execution name is derived from the event's idempotency key (``PaymentReceived:<paymentId>``; a
replay from the archive adds ``#replay:<replay-name>``, so a replay deliberately runs again, once). Running
again never charges or ships again: the tasks key their partner calls on the payment, not on the
execution (``lambdas/fulfilment/tasks.py``), so a replayed execution reaches the partner as a duplicate.
A redelivered event cannot start the work twice: Step Functions refuses a second Standard execution with
the same name for 90 days (``ExecutionAlreadyExists``, counted here as success) and answers a repeat with
the same name and input while the first still runs with that same execution.

Partial batch responses (Powertools ``BatchProcessor``): only messages that could not be started are
returned to the queue. A malformed event (not JSON, not an EventBridge envelope, wrong source, invalid
detail, or a detail-type other than PaymentReceived) is logged with its message id and event id and
fails its record every time, so the queue's redrive policy moves it to the subscription's DLQ.

``circuitWait``: see ``lambdas/contracts/circuit_wait.py``. The controller pauses this starter while the
circuit is open, so only executions already running wait.

Environment (parsed at init; a bad variable fails the cold start with its name):
    STATE_MACHINE_ARN         the order_fulfilment state machine (required).
    CIRCUIT_WAIT_SECONDS      one wait on an open circuit: the dependency's recovery window (required).
    CIRCUIT_WAIT_LIMIT_SECONDS how long an execution keeps waiting on an open circuit (required).
    POWERTOOLS_SERVICE_NAME   the service (required): the accepted source is ``<service>.ingestion``.
    EVENT_SOURCE              optional override of the accepted source.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field, model_validator

from lambdas.contracts.circuit_wait import (
    CIRCUIT_WAIT_LIMIT_VARIABLE,
    CIRCUIT_WAIT_MAX_LIMIT_SECONDS,
    CIRCUIT_WAIT_MAX_SECONDS,
    CIRCUIT_WAIT_SECONDS_VARIABLE,
)
from lambdas.contracts.environment import SERVICE_NAME
from lambdas.shared import aws
from lambdas.shared.env import ConfigurationError, EnvironmentSettings
from lambdas.shared.events import (
    InvalidEventError,
    PaymentReceived,
    ReceivedEvent,
    contract_for,
    parse_event,
)
from lambdas.shared.observability import observability
from lambdas.workflow_starter.clients import STEP_FUNCTIONS_CLIENT_CONFIG

MAX_NAME_LENGTH: Final = 80
DIGEST_LENGTH: Final = 24  # hex characters of SHA-256: 96 bits
# Step Functions forbids whitespace, brackets, wildcards, many punctuation and control characters in
# names, and recommends ASCII letters, digits, '-' and '_' only (else CloudWatch logging breaks). Keep those.
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
STARTS: Final = contract_for(PaymentReceived)
STATE_MACHINE_ARN_PATTERN: Final = (
    r"^arn:aws[a-z-]*:states:[a-z0-9-]+:[0-9]{12}:stateMachine:[A-Za-z0-9_-]{1,80}$"
)

__all__ = ["ConfigurationError", "StarterSettings", "execution_input", "execution_name", "handler"]


class StarterSettings(EnvironmentSettings):
    state_machine_arn: str = Field(pattern=STATE_MACHINE_ARN_PATTERN)
    service_name: str = Field(min_length=1)
    event_source: str = Field(min_length=1, max_length=256)
    circuit_wait_seconds: int = Field(ge=1, le=CIRCUIT_WAIT_MAX_SECONDS)
    circuit_wait_limit_seconds: int = Field(ge=0, le=CIRCUIT_WAIT_MAX_LIMIT_SECONDS)

    REQUIRED: ClassVar[Mapping[str, str]] = {
        "state_machine_arn": "STATE_MACHINE_ARN",
        "service_name": SERVICE_NAME,
        "circuit_wait_seconds": CIRCUIT_WAIT_SECONDS_VARIABLE,
        "circuit_wait_limit_seconds": CIRCUIT_WAIT_LIMIT_VARIABLE,
    }
    OPTIONAL: ClassVar[Mapping[str, str]] = {"event_source": "EVENT_SOURCE"}

    @model_validator(mode="before")
    @classmethod
    def _default_event_source(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("event_source") and data.get("service_name"):
            return {**data, "event_source": STARTS.source(str(data["service_name"]))}
        return data


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


def circuit_wait(settings: StarterSettings, now: float) -> dict[str, float]:
    """How long each of the execution's waits on an open circuit lasts, and until when it keeps waiting."""
    return {
        "seconds": settings.circuit_wait_seconds,
        "until": round(now + settings.circuit_wait_limit_seconds, 3),
    }


def execution_input(
    received: ReceivedEvent, message_id: str, circuit_wait: Mapping[str, float]
) -> dict[str, Any]:
    """The order_fulfilment input for a PaymentReceived event (see the module docstring)."""
    detail = received.detail
    if not isinstance(detail, PaymentReceived):
        raise InvalidEventError(f"{received.contract.detail_type} does not start fulfilment")
    envelope = received.envelope
    event: dict[str, Any] = {"id": envelope.id, "detailType": envelope.detail_type, "source": envelope.source}
    if envelope.time is not None:
        event["time"] = envelope.time
    if envelope.replay_name is not None:
        event["replayName"] = envelope.replay_name
    return {
        "idempotencyKey": received.idempotency_key,
        "messageId": message_id,
        "event": event,
        "order": {
            "orderId": detail.orderId,
            "amountCents": detail.amountCents,
            "currency": detail.currency,
            "paymentId": detail.paymentId,
        },
        "circuitWait": dict(circuit_wait),
    }


def _event_id(body: str) -> str | None:
    """The envelope's id when the body is at least a JSON object with one, for the logs of a bad event."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    value = document.get("id") if isinstance(document, dict) else None
    return value if isinstance(value, str) else None


# ------------------------------------------------------------------ execution-environment init (once)
clock: Callable[[], float] = time.time  # the circuit-wait deadline's; tests set their own
settings = StarterSettings.from_environment(os.environ)
logger, tracer, metrics = observability(settings.service_name)
sfn = aws.client("stepfunctions", config=STEP_FUNCTIONS_CLIENT_CONFIG)
# A batch whose every record is poison is still a batch answered: each failed record goes back to the
# queue (and on to the DLQ) on its own; raising would make the invocation an error and retry them all.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@tracer.capture_method
def start_fulfilment(record: SQSRecord) -> str:
    """Start (or recognise as already started) the execution for one event; return its name."""
    try:
        received = parse_event(record.body, source=settings.event_source)
        payload = execution_input(received, record.message_id, circuit_wait(settings, clock()))
    except InvalidEventError as exc:
        logger.error(
            "invalid event: left for the DLQ",
            extra={"message_id": record.message_id, "event_id": _event_id(record.body), "reason": str(exc)},
        )
        metrics.add_metric(name="InvalidEvents", unit=MetricUnit.Count, value=1)
        raise  # the record fails on every receive; the redrive policy moves it to the DLQ
    name = execution_name(received.idempotency_key)
    ids = {"message_id": record.message_id, "event_id": received.envelope.id, "execution_name": name}
    try:
        response = sfn.start_execution(
            stateMachineArn=settings.state_machine_arn, name=name, input=json.dumps(payload, sort_keys=True)
        )
    except sfn.exceptions.ExecutionAlreadyExists:
        logger.info("duplicate: execution already exists", extra=ids)
        metrics.add_metric(name="DuplicateEvents", unit=MetricUnit.Count, value=1)
        return name
    except (BotoCoreError, ClientError) as exc:
        logger.warning("could not start: the record is retried", extra={**ids, "error": str(exc)[:1000]})
        metrics.add_metric(name="StartFailures", unit=MetricUnit.Count, value=1)
        raise
    logger.info(
        "started", extra={**ids, "execution_arn": response["executionArn"], "replay": received.is_replay}
    )
    metrics.add_metric(name="FulfilmentsStarted", unit=MetricUnit.Count, value=1)
    return name


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=start_fulfilment, processor=processor, context=context
    )
