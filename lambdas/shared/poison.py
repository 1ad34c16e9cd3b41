"""Quarantine poison messages: straight to the DLQ, with the reason, instead of ``maxReceiveCount`` retries.

A poison message (it can never succeed as it is) only burns concurrency when it is retried, and delays the
DLQ alarm by ``maxReceiveCount`` visibility timeouts. :meth:`PoisonQueue.quarantine` sends the ORIGINAL
body, byte for byte, to the DLQ with these message attributes, so the DLQ can be inspected and, after a
fix, redriven:

    QuarantineReason   machine-readable reason (e.g. ``invalid_event``, ``rejected_by_dependency``)
    QuarantineDetail   human-readable detail (first 1024 characters)
    SourceMessageId    the SQS message id the consumer received
    <extra>            whatever the consumer adds (e.g. ``EventId``, ``IdempotencyKey``)

It logs ``poison message quarantined`` and counts ``PoisonMessages`` only AFTER the send succeeded. If the
send fails it logs that and raises, so the caller reports the record as failed: it is retried and still
reaches the DLQ through the queue's redrive policy. A poison message is never silently dropped.

The consumer needs ``sqs:SendMessage`` on the DLQ (``DurableQueue.dead_letter_queue.grant_send_messages``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from lambdas.contracts.api import QUARANTINE_DETAIL_ATTRIBUTE, QUARANTINE_REASON_ATTRIBUTE

QUARANTINED_MESSAGE: Final = "poison message quarantined"
QUARANTINE_FAILED_MESSAGE: Final = "poison message not quarantined: the record is retried"
METRIC_POISON_MESSAGES: Final = "PoisonMessages"
SOURCE_MESSAGE_ID_ATTRIBUTE: Final = "SourceMessageId"
MAX_ATTRIBUTE_CHARS: Final = 1024
# SQS allows 10 message attributes; three are ours.
MAX_EXTRA_ATTRIBUTES: Final = 7


class PoisonMessageError(ValueError):
    """The message can never succeed as it is. ``reason`` is machine-readable (``QuarantineReason``),
    ``detail`` human-readable (``QuarantineDetail``): what :meth:`PoisonQueue.quarantine` sends with it."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class PoisonQueue:
    """Sends poison messages to ``queue_url`` (the source queue's DLQ)."""

    def __init__(self, sqs_client: Any, queue_url: str, *, logger: Logger, metrics: Metrics) -> None:
        self._sqs = sqs_client
        self.queue_url = queue_url
        self._logger = logger
        self._metrics = metrics

    def quarantine(
        self, record: SQSRecord, reason: str, detail: str, attributes: Mapping[str, str] | None = None
    ) -> None:
        """Move ``record`` to the DLQ. Raises (SDK error) if the send fails, so the record is retried."""
        extra = {name: value for name, value in (attributes or {}).items() if value}
        if len(extra) > MAX_EXTRA_ATTRIBUTES:
            raise ValueError(f"at most {MAX_EXTRA_ATTRIBUTES} extra attributes, got {sorted(extra)}")
        message_attributes = {
            QUARANTINE_REASON_ATTRIBUTE: _string(reason),
            QUARANTINE_DETAIL_ATTRIBUTE: _string(detail or reason),
            SOURCE_MESSAGE_ID_ATTRIBUTE: _string(record.message_id),
            **{name: _string(value) for name, value in extra.items()},
        }
        fields = {"message_id": record.message_id, "reason": reason, "detail": detail[:MAX_ATTRIBUTE_CHARS]}
        try:
            self._sqs.send_message(
                QueueUrl=self.queue_url, MessageBody=record.body, MessageAttributes=message_attributes
            )
        except Exception as exc:
            self._logger.error(QUARANTINE_FAILED_MESSAGE, extra={**fields, "error": repr(exc)[:1000]})
            raise
        self._logger.error(QUARANTINED_MESSAGE, extra=fields)
        self._metrics.add_metric(name=METRIC_POISON_MESSAGES, unit=MetricUnit.Count, value=1)


def _string(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value[:MAX_ATTRIBUTE_CHARS]}
