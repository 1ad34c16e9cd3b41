"""The order consumer's configuration, parsed once from the environment at init.

Required: POWERTOOLS_SERVICE_NAME, IDEMPOTENCY_TABLE_NAME, CIRCUIT_BREAKER_TABLE_NAME,
IDEMPOTENCY_TTL_SECONDS, POISON_MESSAGE_QUEUE_URL and every DependencyPolicy variable (DEPENDENCY_*,
BREAKER_*). Optional: DEPENDENCY_API_KEY_SECRET_ARN (no API key header is sent when unset).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

from aws_lambda_powertools.utilities import parameters
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lambdas.shared.api_key import parse_api_key_secret
from lambdas.shared.dependency_client import DependencyPolicy
from lambdas.shared.env import ConfigurationError, read_required, validation_error_to_config_error

# The key is read once per execution environment; max_age only bounds the Parameters provider's cache.
API_KEY_SECRET_MAX_AGE_SECONDS: Final = 3600


class ConsumerSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    service_name: str = Field(min_length=1)
    idempotency_table_name: str = Field(min_length=3, max_length=255)
    circuit_breaker_table_name: str = Field(min_length=3, max_length=255)
    # Must outlive every redelivery of a message (>= the source queue's retention period).
    idempotency_ttl_seconds: int = Field(ge=1, le=31_536_000)
    poison_message_queue_url: str = Field(pattern=r"^https?://\S+$")
    dependency_api_key_secret_arn: str | None = None
    dependency: DependencyPolicy

    REQUIRED: ClassVar[dict[str, str]] = {
        "service_name": "POWERTOOLS_SERVICE_NAME",
        "idempotency_table_name": "IDEMPOTENCY_TABLE_NAME",
        "circuit_breaker_table_name": "CIRCUIT_BREAKER_TABLE_NAME",
        "idempotency_ttl_seconds": "IDEMPOTENCY_TTL_SECONDS",
        "poison_message_queue_url": "POISON_MESSAGE_QUEUE_URL",
    }
    OPTIONAL: ClassVar[dict[str, str]] = {"dependency_api_key_secret_arn": "DEPENDENCY_API_KEY_SECRET_ARN"}

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


def load_api_key(settings: ConsumerSettings) -> str | None:
    """Fetch the partner API key (call once, at init). None when no secret is configured."""
    if settings.dependency_api_key_secret_arn is None:
        return None
    secret = parameters.get_secret(
        settings.dependency_api_key_secret_arn, max_age=API_KEY_SECRET_MAX_AGE_SECONDS
    )
    return parse_api_key_secret(secret if isinstance(secret, str) else secret.decode())
