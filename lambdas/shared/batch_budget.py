"""Records an invocation has no time for: not attempted, and handed back to the queue at once.

Lambda gives a whole batch one timeout. A record started without time for a dependency call can only
fail, and an invocation that runs past its timeout fails the whole batch: every record, the ones already
charged included, comes back only after the visibility timeout. So a consumer asks ``claim`` before each
record; once the time left cannot fit a call, the remaining records are not touched (no I/O at all) and
``release_unclaimed`` makes them visible again immediately (ChangeMessageVisibility 0), so another
invocation with a full budget takes them now instead of after the visibility timeout.

A release still counts as a receive, so records are worked on most-received first
(``most_received_first``). Never re-sent to the queue: Lambda's recursive-loop detection stops
SQS -> Lambda -> SQS chains.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Final, Protocol

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from lambdas.shared.attempts import receive_count
from lambdas.shared.message_visibility import MessageVisibility

METRIC_RECORDS_NOT_ATTEMPTED: Final = "RecordsNotAttempted"
NOT_ATTEMPTED_MESSAGE: Final = "records not attempted: no time left in this invocation; released"
NOT_RELEASED_MESSAGE: Final = (
    "records not attempted: no time left; attempted records failed, so they back off like those"
)
RELEASE_FAILED_MESSAGE: Final = (
    "release of records not attempted failed; they return after the visibility timeout"
)


def most_received_first(event: dict[str, Any]) -> dict[str, Any]:
    """The event with its records ordered by ``ApproximateReceiveCount``, highest first (stable).

    Every receive counts toward the queue's maxReceiveCount, a release included. When time runs short,
    the records left unattempted are then the ones furthest from the DLQ, not the same unlucky tail again.
    """
    records = list(event.get("Records") or [])
    records.sort(key=lambda record: -receive_count(record))
    return {**event, "Records": records}


class NotAttemptedError(Exception):
    """The invocation has no time left for this record's call; the record goes back to the queue, at once
    unless records this invocation did attempt failed (then it backs off like them: retry_visibility)."""


class SupportsLog(Protocol):
    def info(self, msg: Any, *args: Any, **kwargs: Any) -> Any: ...

    def warning(self, msg: Any, *args: Any, **kwargs: Any) -> Any: ...


class SupportsMetrics(Protocol):
    def add_metric(self, name: str, unit: Any, value: float) -> Any: ...


class BatchBudget:
    """Per invocation: ``start``, then ``claim`` per record, then ``release_unclaimed`` once.

    A record is started only while the time left fits the slower of: ``required_ms`` (for a dependency
    call, ``DependencyPolicy.full_attempt_budget_ms``), and the slowest of this environment's last
    ``RECENT_RECORDS`` records plus ``reserve_ms`` (what the invocation still does after its last record).
    Measured, because a record's own bookkeeping (idempotency and status writes) can cost more than its
    call: a slow store, a busy host.

    The first record of an invocation needs only ``required_ms``: a record's calls are bounded by the
    time left (the client stops attempting when it runs out), so the measured slowness protects the
    records after it, not the first. Held to it, a record slower than the timeout could never be tried
    again in this environment: every invocation would hand it back, each time spending a receive, until
    the queue dead-lettered it (seen: a brown-out on a busy host, 95 hand-backs, 6 in the DLQ).
    """

    RECENT_RECORDS: Final = 10

    def __init__(
        self,
        sqs_client: Any,
        *,
        required_ms: int,
        logger: SupportsLog,
        metrics: SupportsMetrics | None = None,
        reserve_ms: int = 0,
    ) -> None:
        self._visibility = MessageVisibility(sqs_client)
        self.required_ms = required_ms
        self.reserve_ms = reserve_ms
        self._logger = logger
        self._metrics = metrics
        self._remaining_ms: Callable[[], int] = lambda: 0
        self._unclaimed: list[SQSRecord] = []
        self._recent_ms: deque[int] = deque(maxlen=self.RECENT_RECORDS)
        self._claimed_with_ms: int | None = None  # time left when the record in progress was claimed
        self._claimed = 0  # records claimed in this invocation

    @classmethod
    def for_dependency(
        cls, sqs_client: Any, policy: Any, *, logger: SupportsLog, metrics: SupportsMetrics | None = None
    ) -> BatchBudget:
        """For a consumer of one dependency: a full attempt at least, the policy's margin kept in reserve."""
        return cls(
            sqs_client,
            required_ms=policy.full_attempt_budget_ms,
            reserve_ms=policy.safety_margin_ms,
            logger=logger,
            metrics=metrics,
        )

    @property
    def needed_ms(self) -> int:
        """Time a record needs left to be started now (the first of an invocation: one full attempt)."""
        if self._claimed == 0:
            return self.required_ms
        slowest = max(self._recent_ms, default=0)
        return max(self.required_ms, slowest + self.reserve_ms)

    def start(self, remaining_ms: Callable[[], int]) -> None:
        self._remaining_ms = remaining_ms
        self._unclaimed = []
        self._claimed_with_ms = None
        self._claimed = 0

    def claim(self, record: SQSRecord) -> None:
        """Return if the record may be processed now; raise NotAttemptedError (after noting it) if not."""
        left = self._remaining_ms()
        self._close_record(left)
        needed = self.needed_ms
        if self._unclaimed or left < needed:
            self._unclaimed.append(record)
            raise NotAttemptedError(f"{left} ms left, a record needs {needed} ms")
        self._claimed_with_ms = left
        self._claimed += 1

    def _close_record(self, left: int) -> None:
        if self._claimed_with_ms is not None:
            self._recent_ms.append(max(0, self._claimed_with_ms - left))
            self._claimed_with_ms = None

    @property
    def unclaimed(self) -> list[SQSRecord]:
        return list(self._unclaimed)

    def release_unclaimed(self, attempted_failures: int = 0) -> int:
        """Make every unclaimed record visible again now; returns how many were released.

        Only while the records this invocation did attempt all succeeded: then time ran short because the
        batch was large, and another environment can take the rest at once. When attempted records failed
        (the dependency is slow or failing), the rest are not released here: they back off like the
        failed ones (``RetryVisibility.apply(..., not_attempted_too=True)``). Every receive counts toward
        maxReceiveCount, and hurrying work straight back to a struggling dependency would walk it into
        the DLQ.

        Counted as ``RecordsNotAttempted``. A failed release costs only time (the record returns after its
        visibility timeout), so it is logged, never raised: the batch response must still reach Lambda.
        """
        self._close_record(self._remaining_ms())
        if not self._unclaimed:
            return 0
        if attempted_failures > 0:
            self._logger.info(
                NOT_RELEASED_MESSAGE,
                extra={"not_attempted": len(self._unclaimed), "attempted_failures": attempted_failures},
            )
            self._count_not_attempted()
            return 0
        released, problems = self._visibility.change((record, 0) for record in self._unclaimed)
        if problems:
            self._logger.warning(RELEASE_FAILED_MESSAGE, extra={"failed": problems})
        self._logger.info(
            NOT_ATTEMPTED_MESSAGE, extra={"not_attempted": len(self._unclaimed), "released": len(released)}
        )
        self._count_not_attempted()
        return len(released)

    def _count_not_attempted(self) -> None:
        if self._metrics is not None:
            self._metrics.add_metric(
                name=METRIC_RECORDS_NOT_ATTEMPTED, unit=MetricUnit.Count, value=len(self._unclaimed)
            )
