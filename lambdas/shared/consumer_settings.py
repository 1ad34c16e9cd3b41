"""Settings every load-leveling consumer that calls one dependency is given, parsed once at init.

The variables come from ``stacks/load_leveling_consumer.py`` (IDEMPOTENCY_*, POISON_MESSAGE_QUEUE_URL,
QUEUE_*),
``stacks/downstream_dependency.py::DownstreamDependency.environment()`` (DEPENDENCY_*, BREAKER_*,
CIRCUIT_BREAKER_TABLE_NAME, DEPENDENCY_API_KEY_SECRET_ARN, CIRCUIT_EVENTS_BUS_NAME) and
``stacks/service_function.py`` (POWERTOOLS_SERVICE_NAME).

Required: POWERTOOLS_SERVICE_NAME, IDEMPOTENCY_TABLE_NAME, CIRCUIT_BREAKER_TABLE_NAME,
IDEMPOTENCY_TTL_SECONDS, POISON_MESSAGE_QUEUE_URL, QUEUE_VISIBILITY_TIMEOUT_SECONDS,
QUEUE_MAX_RECEIVE_COUNT and every DependencyPolicy variable. Optional:
DEPENDENCY_API_KEY_SECRET_ARN (no API key header is sent when unset) and CIRCUIT_EVENTS_BUS_NAME
(CircuitOpened events are not published when unset).

A consumer with more settings subclasses :class:`QueueConsumerSettings`, adds its fields and extends
``REQUIRED`` / ``OPTIONAL`` with their variables; ``from_environment`` reads them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lambdas.shared.dependency_client import DependencyPolicy
from lambdas.shared.env import (
    ConfigurationError,
    read_optional,
    read_required,
    validation_error_to_config_error,
)
from lambdas.shared.retry_visibility import BackoffPolicy


class QueueConsumerSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    service_name: str = Field(min_length=1)
    idempotency_table_name: str = Field(min_length=3, max_length=255)
    circuit_breaker_table_name: str = Field(min_length=3, max_length=255)
    # Must outlive every redelivery of a message (>= the source queue's retention period).
    idempotency_ttl_seconds: int = Field(ge=1, le=31_536_000)
    poison_message_queue_url: str = Field(pattern=r"^https?://\S+$")
    # The source queue's settings: a failed record's backoff never exceeds the visibility timeout, and
    # its last receive before the DLQ waits the whole of it (lambdas/shared/retry_visibility.py).
    queue_visibility_timeout_seconds: int = Field(ge=0, le=43_200)
    queue_max_receive_count: int = Field(ge=1, le=1_000)
    dependency_api_key_secret_arn: str | None = None
    # Event bus (name or ARN) for CircuitOpened events (lambdas/shared/circuit_events.py).
    circuit_events_bus_name: str | None = Field(default=None, min_length=1, max_length=1600)
    dependency: DependencyPolicy

    # field -> environment variable
    REQUIRED: ClassVar[dict[str, str]] = {
        "service_name": "POWERTOOLS_SERVICE_NAME",
        "idempotency_table_name": "IDEMPOTENCY_TABLE_NAME",
        "circuit_breaker_table_name": "CIRCUIT_BREAKER_TABLE_NAME",
        "idempotency_ttl_seconds": "IDEMPOTENCY_TTL_SECONDS",
        "poison_message_queue_url": "POISON_MESSAGE_QUEUE_URL",
        "queue_visibility_timeout_seconds": "QUEUE_VISIBILITY_TIMEOUT_SECONDS",
        "queue_max_receive_count": "QUEUE_MAX_RECEIVE_COUNT",
    }
    OPTIONAL: ClassVar[dict[str, str]] = {
        "dependency_api_key_secret_arn": "DEPENDENCY_API_KEY_SECRET_ARN",
        "circuit_events_bus_name": "CIRCUIT_EVENTS_BUS_NAME",
    }

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> Self:
        """Parse and validate; raises ConfigurationError naming every missing or invalid variable."""
        problems: list[str] = []
        raw: dict[str, Any] = {}
        try:
            raw.update(read_required(env, cls.REQUIRED))
        except ConfigurationError as exc:
            problems.append(str(exc))
        try:
            raw["dependency"] = DependencyPolicy.from_environment(env)
        except ConfigurationError as exc:
            problems.append(str(exc))
        if problems:
            raise ConfigurationError(f"{cls.__name__} misconfigured: " + " | ".join(problems))
        raw.update(read_optional(env, cls.OPTIONAL))
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise validation_error_to_config_error(exc, {**cls.REQUIRED, **cls.OPTIONAL}, cls) from None

    @property
    def backoff(self) -> BackoffPolicy:
        """When this consumer's failed records come back (lambdas/shared/retry_visibility.py)."""
        return BackoffPolicy(
            visibility_timeout_seconds=self.queue_visibility_timeout_seconds,
            max_receive_count=self.queue_max_receive_count,
            recovery_seconds=self.dependency.breaker_recovery_seconds,
        )
