"""The DynamoDB tables every consumer touches per record (idempotency, circuit state): SDK settings and
the signal that the idempotency table is unavailable.

The default boto3 client waits 60 s per read and retries up to 10 times ("legacy" mode): a slow or
unreachable table would eat a record's whole time budget before the partner is even called. These
tables are small key lookups, so a second is plenty, and two standard-mode attempts cover a throttle: the
queue's redelivery is the next retry layer (every receive writes here, so stacks/retry_budget.py counts
receives x attempts; the figures live in ``lambdas.contracts.retries``).

An idempotency table that cannot be read or written must never let a record through unguarded (it
could charge twice), and must never drop it: the record fails and stays in its queue. It is logged as
``IDEMPOTENCY_STORE_UNAVAILABLE_MESSAGE`` and counted as ``METRIC_IDEMPOTENCY_STORE_ERRORS`` (dimension
``service``), which ``stacks/monitoring.py`` alarms on.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from aws_lambda_powertools.metrics import MetricUnit
from botocore.config import Config

from lambdas.contracts.metrics import METRIC_IDEMPOTENCY_STORE_ERRORS
from lambdas.contracts.retries import (
    TABLE_CONNECT_TIMEOUT_SECONDS,
    TABLE_READ_TIMEOUT_SECONDS,
    TABLE_TOTAL_MAX_ATTEMPTS,
)

TABLE_CLIENT_CONFIG: Final = Config(
    connect_timeout=TABLE_CONNECT_TIMEOUT_SECONDS,
    read_timeout=TABLE_READ_TIMEOUT_SECONDS,
    retries={"mode": "standard", "total_max_attempts": TABLE_TOTAL_MAX_ATTEMPTS},
)
IDEMPOTENCY_STORE_UNAVAILABLE_MESSAGE: Final = "idempotency table unavailable: the record stays in the queue"


class _SupportsLog(Protocol):
    def error(self, msg: Any, *args: Any, **kwargs: Any) -> Any: ...


class _SupportsMetrics(Protocol):
    def add_metric(self, name: str, unit: Any, value: float) -> Any: ...


def idempotency_store_unavailable(
    error: Exception, *, logger: _SupportsLog, metrics: _SupportsMetrics
) -> None:
    """Log and count; the caller re-raises so the record is reported failed and stays in the queue."""
    cause = error.__cause__ or error
    logger.error(
        IDEMPOTENCY_STORE_UNAVAILABLE_MESSAGE,
        extra={"error": type(error).__name__, "cause": f"{type(cause).__name__}: {cause}"[:1000]},
    )
    metrics.add_metric(name=METRIC_IDEMPOTENCY_STORE_ERRORS, unit=MetricUnit.Count, value=1)
