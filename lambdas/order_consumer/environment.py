"""The order consumer's configuration, parsed once from the environment at init.

Required: POWERTOOLS_SERVICE_NAME, IDEMPOTENCY_TABLE_NAME, CIRCUIT_BREAKER_TABLE_NAME,
IDEMPOTENCY_TTL_SECONDS, POISON_MESSAGE_QUEUE_URL and every DependencyPolicy variable (DEPENDENCY_*,
BREAKER_*). Optional: DEPENDENCY_API_KEY_SECRET_ARN (no API key header is sent when unset),
ORDER_STATUS_TABLE_NAME (order status is not recorded when unset) and CIRCUIT_EVENTS_BUS_NAME
(CircuitOpened events are not published when unset).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lambdas.shared.dependency_client import DependencyPolicy
from lambdas.shared.env import ConfigurationError, read_required, validation_error_to_config_error


class ConsumerSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    service_name: str = Field(min_length=1)
    idempotency_table_name: str = Field(min_length=3, max_length=255)
    circuit_breaker_table_name: str = Field(min_length=3, max_length=255)
    # Must outlive every redelivery of a message (>= the source queue's retention period).
    idempotency_ttl_seconds: int = Field(ge=1, le=31_536_000)
    poison_message_queue_url: str = Field(pattern=r"^https?://\S+$")
    dependency_api_key_secret_arn: str | None = None
    order_status_table_name: str | None = Field(default=None, min_length=3, max_length=255)
    # Event bus (name or ARN) for CircuitOpened events (lambdas/shared/circuit_events.py).
    circuit_events_bus_name: str | None = Field(default=None, min_length=1, max_length=1600)
    dependency: DependencyPolicy

    REQUIRED: ClassVar[dict[str, str]] = {
        "service_name": "POWERTOOLS_SERVICE_NAME",
        "idempotency_table_name": "IDEMPOTENCY_TABLE_NAME",
        "circuit_breaker_table_name": "CIRCUIT_BREAKER_TABLE_NAME",
        "idempotency_ttl_seconds": "IDEMPOTENCY_TTL_SECONDS",
        "poison_message_queue_url": "POISON_MESSAGE_QUEUE_URL",
    }
    OPTIONAL: ClassVar[dict[str, str]] = {
        "dependency_api_key_secret_arn": "DEPENDENCY_API_KEY_SECRET_ARN",
        "order_status_table_name": "ORDER_STATUS_TABLE_NAME",
        "circuit_events_bus_name": "CIRCUIT_EVENTS_BUS_NAME",
    }

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> ConsumerSettings:
        """Parse and validate; raises ConfigurationError naming every missing or invalid variable."""
        missing: list[str] = []
        raw: dict[str, Any] = {}
        try:
            raw.update(read_required(env, cls.REQUIRED))
        except ConfigurationError as exc:
            missing.append(str(exc))
        try:
            raw["dependency"] = DependencyPolicy.from_environment(env)
        except ConfigurationError as exc:
            missing.append(str(exc))
        if missing:
            raise ConfigurationError("order consumer misconfigured: " + " | ".join(missing))
        raw.update(
            {field: env[var].strip() for field, var in cls.OPTIONAL.items() if env.get(var, "").strip()}
        )
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            names = {**cls.REQUIRED, **cls.OPTIONAL}
            raise validation_error_to_config_error(exc, names, cls) from None
