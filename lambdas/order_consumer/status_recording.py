"""Best-effort order-status recording for the consumer (lambdas/shared/order_status.py holds the rules).

The charge is what matters; the status is a view of it. So a status write never fails a record: a write the
state machine refuses (a late duplicate) is expected and only logged at debug level, and a write that fails
(throttling, timeout, table missing) is logged and counted as ``OrderStatusWriteErrors`` and the record goes
on. Failing the record instead would send an already-charged order back to the queue, and, while the status
table is down, eventually to the DLQ. The price: a status can lag behind (e.g. stay ``processing`` for a
charged order) until a later write for the same order succeeds; alarm on the metric.

Disabled (every call a no-op) when ORDER_STATUS_TABLE_NAME is unset.
"""

from __future__ import annotations

from typing import Any, Final

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from lambdas.shared import aws
from lambdas.shared.order_status import OrderState, OrderStatusRepository

# A slow status table must not eat the charge's time budget: short timeouts, one retry.
STATUS_CLIENT_CONFIG: Final = Config(
    connect_timeout=1, read_timeout=1, retries={"mode": "standard", "total_max_attempts": 2}
)
METRIC_WRITE_ERRORS: Final = "OrderStatusWriteErrors"


class StatusRecorder:
    def __init__(self, repository: OrderStatusRepository | None, *, logger: Logger, metrics: Metrics) -> None:
        self.repository = repository
        self._logger = logger
        self._metrics = metrics

    @classmethod
    def create(cls, table_name: str | None, *, logger: Logger, metrics: Metrics) -> StatusRecorder:
        if not table_name:
            return cls(None, logger=logger, metrics=metrics)
        client = aws.client("dynamodb", config=STATUS_CLIENT_CONFIG)
        return cls(OrderStatusRepository(table_name, client), logger=logger, metrics=metrics)

    @property
    def enabled(self) -> bool:
        return self.repository is not None

    def accepted(self, order_id: str) -> None:
        self._record(order_id, OrderState.ACCEPTED)

    def processing(self, order_id: str) -> None:
        self._record(order_id, OrderState.PROCESSING)

    def done(self, order_id: str, charge_id: str) -> None:
        self._record(order_id, OrderState.DONE, charge_id=charge_id)

    def failed(self, order_id: str, reason: str, detail: str | None = None) -> None:
        self._record(order_id, OrderState.FAILED, reason=reason, detail=detail)

    def _record(self, order_id: str, state: OrderState, **fields: Any) -> None:
        if self.repository is None:
            return
        try:
            applied = self.repository.transition(order_id, state, **fields)
        except (BotoCoreError, ClientError) as error:
            self._logger.warning(
                "order status not recorded",
                extra={"order_id": order_id, "order_status": state.value, "error": repr(error)},
            )
            self._metrics.add_metric(name=METRIC_WRITE_ERRORS, unit=MetricUnit.Count, value=1)
            return
        if not applied:
            self._logger.debug(
                "order status transition refused (already further along)",
                extra={"order_id": order_id, "order_status": state.value},
            )
