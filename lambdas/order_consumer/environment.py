"""The order consumer's configuration, parsed once from the environment at init.

Required: POWERTOOLS_SERVICE_NAME, IDEMPOTENCY_TABLE_NAME, CIRCUIT_BREAKER_TABLE_NAME,
IDEMPOTENCY_TTL_SECONDS, POISON_MESSAGE_QUEUE_URL, QUEUE_*, DEPENDENCY_MAX_TRIES and every DependencyPolicy
variable (DEPENDENCY_*, BREAKER_*). Optional: DEPENDENCY_API_KEY_SECRET_ARN (no API key header is sent when unset),
ORDER_STATUS_TABLE_NAME (order status is not recorded when unset) and CIRCUIT_EVENTS_BUS_NAME
(CircuitOpened events are not published when unset).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import ClassVar

from pydantic import Field

from lambdas.contracts.environment import DEPENDENCY_MAX_TRIES
from lambdas.shared.consumer_settings import QueueConsumerSettings
from lambdas.shared.retry_visibility import BackoffPolicy


class OrderConsumerSettings(QueueConsumerSettings):
    """The settings every queue consumer has, plus where order statuses are recorded."""

    order_status_table_name: str | None = Field(default=None, min_length=3, max_length=255)
    # Tries at the partner before a record is quarantined (lambdas/shared/dependency_tries.py).
    dependency_max_tries: int = Field(ge=1, le=100)

    REQUIRED: ClassVar[Mapping[str, str]] = {
        **QueueConsumerSettings.REQUIRED,
        "dependency_max_tries": DEPENDENCY_MAX_TRIES,
    }
    OPTIONAL: ClassVar[Mapping[str, str]] = {
        **QueueConsumerSettings.OPTIONAL,
        "order_status_table_name": "ORDER_STATUS_TABLE_NAME",
    }

    @property
    def backoff(self) -> BackoffPolicy:
        return replace(super().backoff, max_tries=self.dependency_max_tries)
