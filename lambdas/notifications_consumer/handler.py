"""Notifications consumer: the ``notifications`` fan-out queue -> POST /notifications at the partner.

Every SQS message body is an EventBridge event (OrderCancelled or CustomerUpdated; the bodies sent for
each are in ``notifications.py``). Per record:

  * sent           the partner accepted the notification: ``NotificationsSent``. At most once per event
                   idempotency key (Powertools idempotency, DynamoDB ``IDEMPOTENCY_TABLE_NAME``): a
                   redelivered or duplicated event replays the stored result without calling the partner
                   (``DuplicateEvents``), and the same key goes to the partner as ``Idempotency-Key``.
  * deferred       the dependency is down or its circuit is open, and being non-critical
                   (DEPENDENCY_CRITICAL=false) its client answered with the fallback: nothing was sent. Logged as ``notification deferred`` (event id, detail-type, event time, key) and
                   counted as ``NotificationsDeferred``; the record SUCCEEDS, so an unavailable notifier never
                   holds the queue. No idempotency record is kept for it: a later delivery of the same event
                   can still send it, and an archive replay of the outage window sends what was deferred.
  * poison         cannot succeed as it is: not an EventBridge event or not the expected source, an invalid
                   detail, a detail-type this consumer does not handle, a key that cannot be a header, a key
                   already used for a different notification, or a partner answer that says "never" (400, 422 or an
                   explicit partner code; ``lambdas/shared/dependency_client.py``). Sent straight to
                   the DLQ (``POISON_MESSAGE_QUEUE_URL``) with the reason (``lambdas/shared/poison.py``) and
                   counted as ``PoisonMessages``; if that send fails the record fails and reaches the DLQ
                   through the redrive policy instead.
  * not attempted  once the invocation's remaining time cannot fit a full attempt, the remaining records
                   are not touched: reported in ``batchItemFailures`` and made visible again at once
                   (``lambdas/shared/batch_budget.py``), or backed off like the failed ones when attempted
                   records failed, instead of being deferred unsent.
  * retried        anything else is reported in ``batchItemFailures``; dependency failures come back after a
                   jittered backoff (``lambdas/shared/retry_visibility.py``), the rest after the visibility
                   timeout: a call that started but ran out of the invocation's time (``BudgetExhaustedError``:
                   our shortfall, never a fallback, so never deleted unsent), the partner refusing our key or
                   route (401/403 after one re-read of the secret, another unexpected 4xx: counted toward the
                   breaker, never quarantined), the idempotency table unavailable (``IdempotencyStoreErrors``,
                   alarmed), a 2xx without a notificationId, or transient errors when the dependency is
                   configured critical. The same event in progress elsewhere comes back after one function
                   timeout, when that invocation must have ended.

Module import = execution-environment init: environment parsed (fails fast naming the variables), API key
provider (cached with a max age), breaker/idempotency persistence (short SDK timeouts) and the SQS client
created once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Final

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.contracts.api import IDEMPOTENCY_KEY_ATTRIBUTE
from lambdas.contracts.metrics import METRIC_NOTIFICATIONS_DEFERRED
from lambdas.contracts.retries import attempts_on_receive
from lambdas.notifications_consumer.environment import NotificationsSettings
from lambdas.notifications_consumer.notifications import (
    NotificationDeferredError,
    PlannedNotification,
    PoisonEventError,
    plan,
    send_notification,
)
from lambdas.shared.attempts import receive_count
from lambdas.shared.dependency_client import PermanentUpstreamError
from lambdas.shared.models import NotificationRequest
from lambdas.shared.observability import observability
from lambdas.shared.queue_consumer import QueueConsumer
from lambdas.shared.stores import idempotency_store_unavailable

# Scope of the idempotency records: the business operation, so a renamed function keeps its history.
IDEMPOTENCY_KEY_PREFIX: Final = "notifications-consumer.notify"
METRIC_SENT: Final = "NotificationsSent"
METRIC_DUPLICATES: Final = "DuplicateEvents"
DEFERRED_MESSAGE: Final = "notification deferred"
_DUPLICATE: Final = "duplicate"

# ------------------------------------------------------------------ execution-environment init (once)
settings = NotificationsSettings.from_environment(os.environ)
logger, tracer, metrics = observability(settings.service_name)


def _mark_duplicate(response: Any, idempotent_data: DataRecord) -> Any:
    # The stored result of an earlier delivery: the partner is not called again.
    return {**response, _DUPLICATE: True} if isinstance(response, dict) else response


# The same key with a different notification (e.g. another customer for the order) is a producer bug.
consumer = QueueConsumer(
    settings, logger=logger, metrics=metrics, idempotency_payload="notification", on_replay=_mark_duplicate
)
dependency = consumer.dependency
poison = consumer.poison


@consumer.idempotent("work", key_prefix=IDEMPOTENCY_KEY_PREFIX)
def notify_once(
    work: dict[str, Any], remaining_ms: Callable[[], int], max_attempts: int | None = None
) -> dict[str, Any]:
    """Idempotent unit. ``work`` = {"idempotencyKey": str, "notification": NotificationRequest as JSON}."""
    sent = send_notification(
        dependency,
        NotificationRequest.model_validate(work["notification"]),
        idempotency_key=work["idempotencyKey"],
        remaining_ms=remaining_ms,
        max_attempts=max_attempts,
    )
    return sent.model_dump()


# ------------------------------------------------------------------ per record


def _event_attributes(planned: PlannedNotification) -> dict[str, str]:
    envelope = planned.event.envelope
    return {
        "EventId": envelope.id,
        "DetailType": envelope.detail_type,
        IDEMPOTENCY_KEY_ATTRIBUTE: planned.idempotency_key,
    }


@tracer.capture_method
def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> dict[str, Any]:
    try:
        planned = plan(record.body, source=settings.event_source)
    except PoisonEventError as exc:
        poison.quarantine(record, exc.reason, exc.detail)
        return {"quarantined": exc.reason}
    envelope = planned.event.envelope
    context_keys = {
        "event_id": envelope.id,
        "detail_type": envelope.detail_type,
        "replay": planned.event.is_replay,
    }
    with logger.append_context_keys(**context_keys):
        try:
            result = notify_once(
                work={
                    "idempotencyKey": planned.idempotency_key,
                    "notification": planned.request.model_dump(),
                },
                remaining_ms=lambda_context.get_remaining_time_in_millis,
                # The queue's redelivery is a retry layer too: fewer client attempts on each receive.
                max_attempts=attempts_on_receive(dependency.policy.max_attempts, receive_count(record)),
            )
        except NotificationDeferredError as exc:
            logger.warning(
                DEFERRED_MESSAGE,
                extra={
                    "message_id": record.message_id,
                    "event_time": envelope.time,
                    "idempotency_key": planned.idempotency_key,
                    "template": planned.request.template,
                    "dependency": exc.dependency,
                    "fallback_source": exc.fallback_source,
                    "attempts": exc.attempts,
                },
            )
            metrics.add_metric(name=METRIC_NOTIFICATIONS_DEFERRED, unit=MetricUnit.Count, value=1)
            return {"deferred": planned.idempotency_key}
        except IdempotencyPersistenceLayerError as exc:
            idempotency_store_unavailable(exc, logger=logger, metrics=metrics)
            raise
        except IdempotencyValidationError:
            detail = f"key {planned.idempotency_key!r} was already used for a different notification"
            poison.quarantine(record, "idempotency_key_reused", detail, _event_attributes(planned))
            return {"quarantined": "idempotency_key_reused"}
        except PermanentUpstreamError as exc:
            poison.quarantine(record, "rejected_by_dependency", str(exc), _event_attributes(planned))
            return {"quarantined": "rejected_by_dependency"}
    # Anything else propagates: BatchProcessor reports the record in batchItemFailures and it is retried.
    if result.get(_DUPLICATE):
        logger.info("duplicate event; notification already sent", extra={"event_id": envelope.id})
        metrics.add_metric(name=METRIC_DUPLICATES, unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name=METRIC_SENT, unit=MetricUnit.Count, value=1)
    return result


# ------------------------------------------------------------------ per invocation


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    # SQS counts this consumer's tries (its receives): no tries of its own (cf. the order consumer).
    return consumer.run_batch(event, context, record_handler)
