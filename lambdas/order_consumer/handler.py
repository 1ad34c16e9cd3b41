"""Order consumer: SQS (load-leveling queue) -> charge each order at the partner API.

Per record:
  * valid order          -> charged exactly once (Powertools idempotency keyed on the producer's
                            ``IdempotencyKey`` message attribute scoped by the ``ProducerArn`` the gateway
                            stamped, else the SQS messageId; the same key is sent to the partner as
                            ``Idempotency-Key``), reported as success;
  * transient failure    -> (5xx / 429 / timeout / connection / budget / open circuit / charge in progress
                            elsewhere) reported in ``batchItemFailures``: the message stays in the queue. An
                            open circuit fails in milliseconds. Dependency failures come back when a call can
                            succeed (open circuit: when it lets a probe through; otherwise a jittered backoff
                            on the receive count; ``lambdas/shared/retry_visibility.py``), a charge in
                            progress elsewhere once that invocation must have ended (one function timeout),
                            the others after the visibility timeout.
  * no time left         -> once the invocation's remaining time cannot fit a full attempt, the remaining
                            records are not touched: reported in ``batchItemFailures`` and made visible
                            again at once (``lambdas/shared/batch_budget.py``), or backed off like the
                            failed ones when attempted records failed, so a batch never runs past its
                            timeout because of how many records it took.
  * configuration        -> the partner refused our key (401/403, after one re-read of the secret) or our
                            route (another unexpected 4xx): reported in ``batchItemFailures``, NOT
                            quarantined and the order not marked failed (nothing is wrong with it). The
                            failure counts toward the circuit breaker, so a misconfigured fleet pauses
                            the consumer, and toward the dependency's failure-rate alarm.
  * idempotency table down -> reported in ``batchItemFailures`` (never charged unguarded), logged and
                            counted as ``IdempotencyStoreErrors`` (``lambdas/shared/stores.py``), alarmed.
  * permanent failure    -> quarantined, see below.

Poison messages (invalid JSON, schema violation, invalid idempotency key, an idempotency key reused with a
different order, or an order the partner rejects as one that can never succeed: 400, 422 or an explicit
partner code, see ``lambdas/shared/dependency_client.py``) can never succeed, so retrying them only
burns concurrency and delays the DLQ alarm by ``maxReceiveCount`` visibility timeouts. They are sent
straight to the DLQ (``POISON_MESSAGE_QUEUE_URL``) with the reason as message attributes, and reported as
processed ONLY after that send succeeded. If the send fails the record is reported as failed, so it is
retried and still reaches the DLQ through the redrive policy: a poison message is never silently dropped.

Module import = execution-environment init: environment parsed (fails fast with the variable names), API
key provider (cached with a max age, so a rotated key arrives without a redeploy), HTTP session,
breaker/idempotency persistence (short SDK timeouts) and SQS client created once.
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

from lambdas.contracts.api import IDEMPOTENCY_KEY_ATTRIBUTE, PRODUCER_ARN_ATTRIBUTE, REASON_RETRIES_EXHAUSTED
from lambdas.contracts.retries import attempts_on_receive
from lambdas.order_consumer.environment import OrderConsumerSettings
from lambdas.order_consumer.processing import (
    InvalidOrderError,
    charge_order,
    parse_order,
    scoped_idempotency_key,
    validate_idempotency_key,
)
from lambdas.order_consumer.status_recording import StatusRecorder
from lambdas.shared import aws
from lambdas.shared.dependency_client import (
    DependencyUnavailableError,
    PermanentUpstreamError,
    TransientUpstreamError,
    UpstreamConfigurationError,
    made_no_call,
)
from lambdas.shared.dependency_tries import DependencyTries, TriesExhaustedError
from lambdas.shared.models import Order
from lambdas.shared.observability import observability
from lambdas.shared.queue_consumer import QueueConsumer
from lambdas.shared.stores import TABLE_CLIENT_CONFIG, idempotency_store_unavailable

# Scope of the idempotency records: the business operation, so a renamed function keeps its history.
IDEMPOTENCY_KEY_PREFIX: Final = "order-consumer.charge"

# ------------------------------------------------------------------ execution-environment init (once)
settings = OrderConsumerSettings.from_environment(os.environ)
logger, tracer, metrics = observability(settings.service_name)


def _count_replay(response: Any, idempotent_data: DataRecord) -> Any:
    # Duplicate delivery absorbed: the stored result is returned and the partner is not called again.
    metrics.add_metric(name="IdempotentReplays", unit=MetricUnit.Count, value=1)
    logger.info(
        "duplicate delivery; returning stored result",
        extra={"idempotency_record": idempotent_data.idempotency_key},
    )
    return response


# Same key with a different order is a producer bug, not a duplicate: rejected instead of replayed.
# Announces circuit openings (CIRCUIT_EVENTS_BUS_NAME) so the circuit controller pauses this consumer.
consumer = QueueConsumer(
    settings, logger=logger, metrics=metrics, idempotency_payload="order", on_replay=_count_replay
)
dependency = consumer.dependency
poison = consumer.poison
# Order status (accepted -> processing -> done / failed) for GET /orders/{id}; a no-op without the table.
order_status = StatusRecorder.create(settings.order_status_table_name, logger=logger, metrics=metrics)
# The records' tries at the partner, counted here rather than by SQS receives (lambdas/shared/dependency_tries.py).
dependency_tries = DependencyTries(
    aws.client("dynamodb", config=TABLE_CLIENT_CONFIG),
    settings.idempotency_table_name,
    max_tries=settings.dependency_max_tries,
    ttl_seconds=settings.idempotency_ttl_seconds,
)
# messageId -> the record's tries after this invocation: its backoff (retry_visibility) goes by them.
tries_this_batch: dict[str, int] = {}


@consumer.idempotent("charge", key_prefix=IDEMPOTENCY_KEY_PREFIX)
def charge_once(charge: dict[str, Any], remaining_ms: Callable[[], int], message_id: str) -> dict[str, Any]:
    """Idempotent unit of work. ``charge`` = {"idempotencyKey": str, "order": Order as JSON}.

    Inside the idempotent unit: a duplicate delivery replays the stored result, records nothing and
    counts no try.
    """
    order = Order.model_validate(charge["order"])
    key = charge["idempotencyKey"]
    attempt = dependency_tries.begin(key)  # raises TriesExhaustedError after the last try
    tries_this_batch[message_id] = attempt.number
    order_status.processing(order.orderId)
    try:
        result = charge_order(
            dependency,
            order,
            idempotency_key=key,
            remaining_ms=remaining_ms,
            # The consumer's tries are a retry layer too: fewer client attempts on each.
            max_attempts=attempts_on_receive(dependency.policy.max_attempts, attempt.number),
        )
    except (DependencyUnavailableError, TransientUpstreamError, UpstreamConfigurationError) as exc:
        if made_no_call(exc):
            dependency_tries.refund(key)
            tries_this_batch[message_id] = attempt.number - 1
        else:
            dependency_tries.failed(key, exc)
        raise
    return result.model_dump()


# ------------------------------------------------------------------ per record


def _attribute(record: SQSRecord, name: str) -> str | None:
    value: str | None = ((record.get("messageAttributes") or {}).get(name) or {}).get("stringValue")
    return value


def idempotency_key_for(record: SQSRecord) -> str:
    """The key the order is charged under: the producer's Idempotency-Key (String message attribute)
    scoped by the producer the gateway stamped, else the SQS messageId."""
    value = _attribute(record, IDEMPOTENCY_KEY_ATTRIBUTE)
    if value is None:
        return record.message_id
    return scoped_idempotency_key(_attribute(record, PRODUCER_ARN_ATTRIBUTE), validate_idempotency_key(value))


def quarantine(record: SQSRecord, reason: str, detail: str) -> None:
    """Send a poison message to the DLQ with its effective IdempotencyKey. Raises if the send fails.

    ``PoisonQueue`` logs "quarantined" and counts it only once the send succeeded.
    """
    producer_key = _attribute(record, IDEMPOTENCY_KEY_ATTRIBUTE)
    # The effective key travels with the message (and the producer with it, which scopes it): a redrive is
    # a new message (new messageId), and must be processed under the key the order may already have been
    # charged with, so the partner replays it.
    effective_key = producer_key or record.message_id
    poison.quarantine(
        record,
        reason,
        detail,
        {
            IDEMPOTENCY_KEY_ATTRIBUTE: effective_key,
            PRODUCER_ARN_ATTRIBUTE: _attribute(record, PRODUCER_ARN_ATTRIBUTE) or "",
        },
    )


@tracer.capture_method
def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> dict[str, Any]:
    order: Order | None = None
    try:
        order = parse_order(record.body)
        key = idempotency_key_for(record)
    except InvalidOrderError as exc:
        quarantine(record, exc.reason, exc.detail)
        if order is not None:  # a valid order with an invalid idempotency key
            order_status.failed(order.orderId, exc.reason, exc.detail)
        return {"quarantined": exc.reason}
    order_status.accepted(order.orderId)
    try:
        with logger.append_context_keys(order_id=order.orderId):
            result = charge_once(
                charge={"idempotencyKey": key, "order": order.model_dump(mode="json")},
                remaining_ms=lambda_context.get_remaining_time_in_millis,
                message_id=record.message_id,
            )
    except TriesExhaustedError as exc:
        quarantine(record, REASON_RETRIES_EXHAUSTED, str(exc))
        if not dependency_tries.forget(key):  # a redrive gets its tries afresh
            logger.warning(
                "tries not forgotten: a redrive of this order returns to the DLQ", extra={"key": key}
            )
        order_status.failed(order.orderId, REASON_RETRIES_EXHAUSTED, str(exc))
        return {"quarantined": REASON_RETRIES_EXHAUSTED}
    except IdempotencyPersistenceLayerError as exc:
        idempotency_store_unavailable(exc, logger=logger, metrics=metrics)
        raise
    except IdempotencyValidationError:
        reused = _attribute(record, IDEMPOTENCY_KEY_ATTRIBUTE) or key
        quarantine(record, "idempotency_key_reused", f"key {reused!r} was already used for a different order")
        order_status.failed(order.orderId, "idempotency_key_reused")
        return {"quarantined": "idempotency_key_reused"}
    except PermanentUpstreamError as exc:
        quarantine(record, "rejected_by_dependency", str(exc))
        order_status.failed(order.orderId, "rejected_by_dependency", str(exc))
        return {"quarantined": "rejected_by_dependency"}
    # Anything else (transient upstream errors, a refused key or route, open circuit, idempotency in
    # progress) propagates: BatchProcessor reports this record in batchItemFailures and it is retried.
    # Includes idempotent replays (counted separately as IdempotentReplays): records completed, not charges.
    metrics.add_metric(name="OrdersProcessed", unit=MetricUnit.Count, value=1)
    order_status.done(order.orderId, result["chargeId"])
    return result


# ------------------------------------------------------------------ per invocation


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    # Its backoff goes by the tries this consumer counts itself (lambdas/shared/dependency_tries.py), not
    # by SQS receives.
    return consumer.run_batch(event, context, record_handler, tries=tries_this_batch)
