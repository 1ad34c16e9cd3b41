"""OrderConsumerSettings: parsed once from the environment, failing with the variable names."""

from __future__ import annotations

import pytest

from lambdas.order_consumer.environment import OrderConsumerSettings
from lambdas.shared.env import ConfigurationError
from tests.unit.helpers import POLICY_ENV

ENV = {
    "POWERTOOLS_SERVICE_NAME": "order-consumer",
    "IDEMPOTENCY_TABLE_NAME": "idempotency",
    "CIRCUIT_BREAKER_TABLE_NAME": "circuits",
    "IDEMPOTENCY_TTL_SECONDS": "345600",
    "POISON_MESSAGE_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/work-dlq",
    "QUEUE_VISIBILITY_TIMEOUT_SECONDS": "180",
    "QUEUE_MAX_RECEIVE_COUNT": "10",
    "DEPENDENCY_MAX_TRIES": "6",
    **POLICY_ENV,
    "DEPENDENCY_BASE_URL": "https://partner.example.com",
}


def test_settings_are_parsed() -> None:
    settings = OrderConsumerSettings.from_environment(ENV)
    assert settings.idempotency_ttl_seconds == 345_600
    assert settings.dependency.name == "partner" and settings.dependency.critical
    assert settings.dependency_api_key_secret_arn is None
    # Its records' backoff goes by its own tries (lambdas/shared/dependency_tries.py), not the receives.
    assert (settings.backoff.max_tries, settings.backoff.max_receive_count) == (6, 10)
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:partner-key"
    assert (
        OrderConsumerSettings.from_environment(
            {**ENV, "DEPENDENCY_API_KEY_SECRET_ARN": arn}
        ).dependency_api_key_secret_arn
        == arn
    )


def test_every_missing_variable_is_named_at_once() -> None:
    env = {k: v for k, v in ENV.items() if k not in ("IDEMPOTENCY_TABLE_NAME", "DEPENDENCY_MAX_ATTEMPTS")}
    with pytest.raises(ConfigurationError) as caught:
        OrderConsumerSettings.from_environment(env)
    assert "IDEMPOTENCY_TABLE_NAME" in str(caught.value) and "DEPENDENCY_MAX_ATTEMPTS" in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("IDEMPOTENCY_TTL_SECONDS", "forever"),
        ("IDEMPOTENCY_TTL_SECONDS", "0"),
        ("POISON_MESSAGE_QUEUE_URL", "dlq"),
        ("DEPENDENCY_MAX_TRIES", "0"),
        ("DEPENDENCY_MAX_TRIES", "many"),
    ],
)
def test_invalid_values_are_named(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        OrderConsumerSettings.from_environment({**ENV, variable: value})
