"""The notifications consumer's configuration, parsed once from the environment at init.

Everything a load-leveling consumer gets (``lambdas/shared/consumer_settings.py``: POWERTOOLS_SERVICE_NAME,
IDEMPOTENCY_TABLE_NAME, IDEMPOTENCY_TTL_SECONDS, POISON_MESSAGE_QUEUE_URL, CIRCUIT_BREAKER_TABLE_NAME,
DEPENDENCY_* / BREAKER_*, optional DEPENDENCY_API_KEY_SECRET_ARN and CIRCUIT_EVENTS_BUS_NAME), plus:

    EVENT_SOURCE   optional: the only EventBridge ``source`` accepted. Default ``<service>.ingestion``,
                   the source the ingestion API stamps on every event (``ServiceConfig.event_source``).

DEPENDENCY_CRITICAL is expected to be ``false``: the notification dependency is non-critical, so its
fallback turns an outage or an open circuit into a deferred notification and the record succeeds. With
``true`` the consumer behaves like the order consumer instead: such records fail and wait in the queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field, model_validator

from lambdas.notifications_consumer.notifications import accepted_source
from lambdas.shared.consumer_settings import QueueConsumerSettings


class NotificationsSettings(QueueConsumerSettings):
    event_source: str = Field(min_length=1, max_length=256)

    OPTIONAL: ClassVar[Mapping[str, str]] = {**QueueConsumerSettings.OPTIONAL, "event_source": "EVENT_SOURCE"}

    @model_validator(mode="before")
    @classmethod
    def _default_event_source(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("event_source") and data.get("service_name"):
            return {**data, "event_source": accepted_source(str(data["service_name"]))}
        return data
