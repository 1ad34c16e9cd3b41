"""When a failed record comes back: as soon as it can succeed, not when the visibility timeout says.

A record reported in ``batchItemFailures`` stays in flight until the queue's visibility timeout (6 x the
function timeout) runs out, whatever the dependency does meanwhile. So after each batch the consumer sets
the visibility of the records that failed *because of the dependency* (ChangeMessageVisibility, never a
re-send: Lambda's recursive-loop detection stops SQS -> Lambda -> SQS chains):

* the circuit is open (``DependencyUnavailableError``): the time until it lets a probe through, plus
  jitter, so the records return when a call can be made and not all at once;
* a transient failure with the circuit closed (5xx, 429, timeout, the call's budget ran out): exponential
  backoff with full jitter on the record's receive count, at least the dependency's ``Retry-After``;
* the same order is being charged by another invocation (a producer's resend, processed at the same
  time: ``IdempotencyAlreadyInProgressError``): when that invocation must have ended, i.e. one function
  timeout from now (``in_progress_wait_seconds``: this invocation's time at its start), after which the
  duplicate replays the stored result. Waiting out the visibility timeout (6 x the function timeout)
  was the tail of every drain after an outage;
* the record has used all but ``RESERVED_RECEIVES`` of its tries (``lambdas/shared/dependency_tries.py``;
  its receives, for a consumer that lets SQS count) or of its receives (``maxReceiveCount``): the whole
  visibility timeout, as before. A dependency failure then still needs at least ``RESERVED_RECEIVES`` x
  the visibility timeout to walk a record out of the queue: time for its circuit to open and the circuit
  controller to pause the consumer, after which the record is not received at all until recovery. Fast
  retries spend tries, so they are only the first ones.

Never above the queue's visibility timeout. Every other failure (our key or route refused, the
idempotency store down) keeps the visibility timeout: coming back sooner would not help it, and every
receive counts toward maxReceiveCount. Those are logged with their error (``KEPT_MESSAGE``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

from lambdas.shared.attempts import receive_count
from lambdas.shared.batch_budget import NotAttemptedError, SupportsLog, SupportsMetrics
from lambdas.shared.dependency_client import (
    DependencyUnavailableError,
    TransientUpstreamError,
    UpstreamConfigurationError,
)
from lambdas.shared.message_visibility import MessageVisibility

METRIC_RECORDS_BACKED_OFF: Final = "RecordsBackedOff"
# The last receives before the DLQ keep the whole visibility timeout (see the module docstring).
RESERVED_RECEIVES: Final = 3
BACKOFF_MESSAGE: Final = "failed records come back after their backoff"
BACKOFF_FAILED_MESSAGE: Final = "backoff not applied; the records come back after the visibility timeout"
KEPT_MESSAGE: Final = "failed records come back after the visibility timeout"


@dataclass(frozen=True)
class BackoffPolicy:
    """Seconds before a failed record is visible again (SQS takes whole seconds)."""

    visibility_timeout_seconds: int
    max_receive_count: int
    # Cap of the backoff while the circuit is closed, and of the jitter after an open circuit's wait:
    # the dependency's recovery window, the time its breaker itself waits before trying again.
    recovery_seconds: int
    base_seconds: float = 1.0
    # The tries a consumer that counts its own (dependency_tries) allows; None: its receives are its tries.
    max_tries: int | None = None

    def delay_for(
        self,
        error: BaseException,
        receive_count: int,
        rand: Callable[[], float],
        *,
        not_attempted_too: bool = False,
        tries: int | None = None,
        in_progress_wait_seconds: float | None = None,
    ) -> int | None:
        """The visibility to give a record that failed with ``error``; ``None``: leave it as it is.

        ``not_attempted_too``: records this invocation had no time for (``NotAttemptedError``) back off
        like a transient failure; the consumer asks for that when attempted records failed, i.e. the
        dependency is struggling (otherwise ``BatchBudget`` releases them at once).
        ``tries``: the record's tries so far, when the consumer counts them (else its receives).
        ``in_progress_wait_seconds``: how long another invocation may still hold the same order (the
        function timeout); without it, a record in progress elsewhere keeps the visibility timeout.
        """
        if isinstance(error, IdempotencyAlreadyInProgressError):
            if (
                in_progress_wait_seconds is None
                or receive_count >= self.max_receive_count - RESERVED_RECEIVES
            ):
                return None
            return min(self.visibility_timeout_seconds, math.ceil(in_progress_wait_seconds))
        if isinstance(error, NotAttemptedError):
            if not not_attempted_too:
                return None
            retry_after = 0.0
        elif isinstance(error, UpstreamConfigurationError) or not isinstance(
            error, (DependencyUnavailableError, TransientUpstreamError)
        ):
            return None
        else:
            retry_after = error.retry_after or 0.0
        tried = receive_count if tries is None else tries
        max_tries = self.max_tries or self.max_receive_count
        if (
            tried >= max_tries - RESERVED_RECEIVES
            or receive_count >= self.max_receive_count - RESERVED_RECEIVES
        ):
            return self.visibility_timeout_seconds
        ceiling = min(float(self.recovery_seconds), self.base_seconds * 2 ** max(0, tried - 1))
        jitter = rand() * ceiling  # full jitter
        if isinstance(error, DependencyUnavailableError):
            delay = error.retry_in_seconds + jitter
        else:
            delay = max(jitter, retry_after)
        return min(self.visibility_timeout_seconds, math.ceil(delay))


class RetryVisibility:
    """After a batch: ``apply`` the backoff to the records that failed (``failures_of(processor)``)."""

    def __init__(
        self,
        sqs_client: Any,
        policy: BackoffPolicy,
        *,
        logger: SupportsLog,
        metrics: SupportsMetrics | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy
        self._visibility = MessageVisibility(sqs_client)
        self._logger = logger
        self._metrics = metrics
        self._rand = rand

    def apply(
        self,
        failures: Iterable[tuple[SQSRecord, BaseException | None]],
        *,
        not_attempted_too: bool = False,
        tries: Mapping[str, int] | None = None,
        in_progress_wait_seconds: float | None = None,
    ) -> dict[str, int]:
        """Set each backed-off record's visibility; returns messageId -> seconds for those set.

        ``tries``: messageId -> the record's tries so far, from a consumer that counts them; a record
        missing from it goes by its receives. A failed change is logged, never raised: the batch response
        must still reach Lambda.
        """
        planned: list[tuple[SQSRecord, int]] = []
        kept: dict[str, str] = {}
        for record, error in failures:
            delay = (
                None
                if error is None
                else self.policy.delay_for(
                    error,
                    receive_count(record),
                    self._rand,
                    not_attempted_too=not_attempted_too,
                    tries=(tries or {}).get(record.message_id),
                    in_progress_wait_seconds=in_progress_wait_seconds,
                )
            )
            if delay is not None:
                planned.append((record, delay))
            elif error is not None and not isinstance(error, NotAttemptedError):
                kept[record.message_id] = type(error).__name__
        if kept:  # why a record waits out the whole visibility timeout
            self._logger.info(KEPT_MESSAGE, extra={"errors": kept})
        if not planned:
            return {}
        applied, problems = self._visibility.change(planned)
        if problems:
            self._logger.warning(BACKOFF_FAILED_MESSAGE, extra={"failed": problems})
        if applied:
            self._logger.info(BACKOFF_MESSAGE, extra={"visible_in_seconds": applied})
            if self._metrics is not None:
                self._metrics.add_metric(
                    name=METRIC_RECORDS_BACKED_OFF, unit=MetricUnit.Count, value=len(applied)
                )
        return applied


def failures_of(processor: Any) -> list[tuple[SQSRecord, BaseException | None]]:
    """(record, error) for every record a Powertools ``BatchProcessor`` reported failed in its last run."""
    return [
        (record, info[1]) for record, info in zip(processor.fail_messages, processor.exceptions, strict=True)
    ]
