"""What every load-leveling queue consumer builds once and does per batch, whatever its records are.

A consumer (``lambdas/order_consumer``, ``lambdas/notifications_consumer``) builds one :class:`QueueConsumer`
from its ``QueueConsumerSettings`` at init and keeps only its own record handler. Built once:

* the dependency's client (``lambdas.shared.caller.breaker_client``: the shared breaker, the API key, the
  CircuitOpened hook when a bus is configured) and the SQS client;
* the poison queue (``lambdas/shared/poison.py``), the batch budget (``lambdas/shared/batch_budget.py``),
  the batch processor (partial batch responses) and the retry visibility
  (``lambdas/shared/retry_visibility.py``);
* the idempotency config and persistence (Powertools idempotency, DynamoDB ``IDEMPOTENCY_TABLE_NAME``,
  short SDK timeouts): keyed on the work's ``idempotencyKey``, the same key with another ``payload`` is
  rejected, not replayed (``IdempotencyValidationError``), records kept ``IDEMPOTENCY_TTL_SECONDS``.

Per batch (:meth:`QueueConsumer.run_batch`): the ``batch received`` log line, the idempotency config given
the invocation's context (in-progress records expire with it if it is killed mid-call), the batch budget
started; each record gets the message id as correlation id and is claimed before any I/O (a record without
time left is not attempted, ``NotAttemptedError``); then the unclaimed records are released, the failed ones
backed off, and ``RecordsRetried`` counts every record reported in ``batchItemFailures``.

How a failed record's backoff is counted is the consumer's: one that counts its tries at the dependency
(``lambdas/shared/dependency_tries.py``: the order consumer) passes ``tries`` (messageId -> the record's
tries after this batch), which ``run_batch`` clears before the batch; one that does not (the notifications
consumer) lets SQS count, by receives.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any, Final, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    IdempotentHookFunction,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.shared import aws
from lambdas.shared.batch_budget import BatchBudget, most_received_first
from lambdas.shared.caller import breaker_client
from lambdas.shared.consumer_settings import QueueConsumerSettings
from lambdas.shared.poison import PoisonQueue
from lambdas.shared.retry_visibility import RetryVisibility, failures_of
from lambdas.shared.stores import TABLE_CLIENT_CONFIG

METRIC_RECORDS_RETRIED: Final = "RecordsRetried"
BATCH_RECEIVED_MESSAGE: Final = "batch received"
# The field of the idempotent unit's data that holds the idempotency key.
IDEMPOTENCY_KEY_FIELD: Final = "idempotencyKey"

RecordHandler = Callable[[SQSRecord, LambdaContext], Any]
F = TypeVar("F", bound=Callable[..., Any])


class QueueConsumer:
    """One consumer's shared plumbing (see the module docstring)."""

    def __init__(
        self,
        settings: QueueConsumerSettings,
        *,
        logger: Logger,
        metrics: Metrics,
        idempotency_payload: str,
        on_replay: IdempotentHookFunction,
    ) -> None:
        """``idempotency_payload``: the field of the idempotent unit's data that must not change under one
        key; ``on_replay``: the Powertools response hook, run when a stored result is replayed."""
        self._logger = logger
        self._metrics = metrics
        self.dependency = breaker_client(settings, logger)
        self.sqs = aws.client("sqs")
        self.poison = PoisonQueue(self.sqs, settings.poison_message_queue_url, logger=logger, metrics=metrics)
        # A record is started only while it still fits; records without time go back to the queue untouched
        # (not a fallback, which would count a call we never made).
        self.batch_budget = BatchBudget.for_dependency(
            self.sqs, settings.dependency, logger=logger, metrics=metrics
        )
        self.processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        # Records that failed because of the dependency come back when a call can succeed, not after the
        # visibility timeout.
        self.retry_visibility = RetryVisibility(self.sqs, settings.backoff, logger=logger, metrics=metrics)
        self.idempotency_config = IdempotencyConfig(
            event_key_jmespath=IDEMPOTENCY_KEY_FIELD,
            # The same key with a different payload is a producer bug, not a duplicate: rejected, not replayed.
            payload_validation_jmespath=idempotency_payload,
            raise_on_no_idempotency_key=True,
            expires_after_seconds=settings.idempotency_ttl_seconds,
            response_hook=on_replay,
        )
        self.idempotency_store = DynamoDBPersistenceLayer(
            table_name=settings.idempotency_table_name,
            boto_config=TABLE_CLIENT_CONFIG,
            boto3_session=aws.session(),
        )

    def idempotent(self, data_keyword_argument: str, *, key_prefix: str) -> Callable[[F], F]:
        """Decorator: the function runs at most once per ``idempotencyKey`` of its ``data_keyword_argument``.

        ``key_prefix`` scopes the records: the business operation, so a renamed function keeps its history.
        """
        decorator: Callable[[F], F] = idempotent_function(
            data_keyword_argument=data_keyword_argument,
            persistence_store=self.idempotency_store,
            config=self.idempotency_config,
            key_prefix=key_prefix,
        )
        return decorator

    def run_batch(
        self,
        event: dict[str, Any],
        context: LambdaContext,
        record_handler: RecordHandler,
        *,
        tries: MutableMapping[str, int] | None = None,
    ) -> PartialItemFailureResponse:
        """One invocation: every record through ``record_handler``, then the failed ones backed off."""
        self._logger.info(
            BATCH_RECEIVED_MESSAGE,
            extra={"function_version": context.function_version, "records": len(event.get("Records") or [])},
        )
        self.idempotency_config.register_lambda_context(context)
        if tries is not None:
            tries.clear()
        # Another invocation charging the same order ends within the function timeout: about this much.
        in_progress_wait_seconds = context.get_remaining_time_in_millis() / 1000.0
        self.batch_budget.start(context.get_remaining_time_in_millis)

        def claimed(record: SQSRecord, lambda_context: LambdaContext) -> Any:
            self._logger.set_correlation_id(record.message_id)
            self.batch_budget.claim(record)  # raises NotAttemptedError, before any I/O, once time is short
            return record_handler(record, lambda_context)

        response = process_partial_response(
            event=most_received_first(event),
            record_handler=claimed,
            processor=self.processor,
            context=context,
        )
        failed = len(response.get("batchItemFailures", []))
        attempted_failures = failed - len(self.batch_budget.unclaimed)
        self.batch_budget.release_unclaimed(attempted_failures=attempted_failures)
        self.retry_visibility.apply(
            failures_of(self.processor),
            not_attempted_too=attempted_failures > 0,
            tries=tries,
            in_progress_wait_seconds=in_progress_wait_seconds,
        )
        if failed:
            self._metrics.add_metric(name=METRIC_RECORDS_RETRIED, unit=MetricUnit.Count, value=failed)
        return response
