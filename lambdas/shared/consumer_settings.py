"""Settings every load-leveling consumer that calls one dependency is given, parsed once at init.

The variables come from ``stacks/load_leveling_consumer.py`` (IDEMPOTENCY_*, POISON_MESSAGE_QUEUE_URL,
QUEUE_*) and every ``BreakerCallerSettings`` variable (``lambdas/shared/caller.py``:
POWERTOOLS_SERVICE_NAME, DEPENDENCY_*, BREAKER_*, CIRCUIT_BREAKER_TABLE_NAME, optional
DEPENDENCY_API_KEY_SECRET_ARN and CIRCUIT_EVENTS_BUS_NAME).

Required: IDEMPOTENCY_TABLE_NAME, IDEMPOTENCY_TTL_SECONDS, POISON_MESSAGE_QUEUE_URL,
QUEUE_VISIBILITY_TIMEOUT_SECONDS, QUEUE_MAX_RECEIVE_COUNT and the caller's.

A consumer with more settings subclasses :class:`QueueConsumerSettings`, adds its fields and extends
``REQUIRED`` / ``OPTIONAL`` with their variables; ``from_environment`` (``lambdas/shared/env.py``) reads
them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import Field

from lambdas.shared.caller import BreakerCallerSettings
from lambdas.shared.retry_visibility import BackoffPolicy


class QueueConsumerSettings(BreakerCallerSettings):
    idempotency_table_name: str = Field(min_length=3, max_length=255)
    # Must outlive every redelivery of a message (>= the source queue's retention period).
    idempotency_ttl_seconds: int = Field(ge=1, le=31_536_000)
    poison_message_queue_url: str = Field(pattern=r"^https?://\S+$")
    # The source queue's settings: a failed record's backoff never exceeds the visibility timeout, and
    # its last receive before the DLQ waits the whole of it (lambdas/shared/retry_visibility.py).
    queue_visibility_timeout_seconds: int = Field(ge=0, le=43_200)
    queue_max_receive_count: int = Field(ge=1, le=1_000)

    REQUIRED: ClassVar[Mapping[str, str]] = {
        **BreakerCallerSettings.REQUIRED,
        "idempotency_table_name": "IDEMPOTENCY_TABLE_NAME",
        "idempotency_ttl_seconds": "IDEMPOTENCY_TTL_SECONDS",
        "poison_message_queue_url": "POISON_MESSAGE_QUEUE_URL",
        "queue_visibility_timeout_seconds": "QUEUE_VISIBILITY_TIMEOUT_SECONDS",
        "queue_max_receive_count": "QUEUE_MAX_RECEIVE_COUNT",
    }

    @property
    def backoff(self) -> BackoffPolicy:
        """When this consumer's failed records come back (lambdas/shared/retry_visibility.py)."""
        return BackoffPolicy(
            visibility_timeout_seconds=self.queue_visibility_timeout_seconds,
            max_receive_count=self.queue_max_receive_count,
            recovery_seconds=self.dependency.breaker_recovery_seconds,
        )
