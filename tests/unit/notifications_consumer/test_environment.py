"""NotificationsSettings (on the shared QueueConsumerSettings): parsed once, failing with variable names."""

from __future__ import annotations

import pytest

from lambdas.notifications_consumer.environment import NotificationsSettings
from lambdas.shared.env import ConfigurationError
from tests.unit.helpers import POLICY_ENV

ENV = {
    "POWERTOOLS_SERVICE_NAME": "resilient-orders",
    "IDEMPOTENCY_TABLE_NAME": "idempotency",
    "CIRCUIT_BREAKER_TABLE_NAME": "circuits",
    "IDEMPOTENCY_TTL_SECONDS": "86400",
    "POISON_MESSAGE_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/notifications-dlq",
    "QUEUE_VISIBILITY_TIMEOUT_SECONDS": "180",
    "QUEUE_MAX_RECEIVE_COUNT": "5",
    **POLICY_ENV,
    "DEPENDENCY_NAME": "notifier",
    "DEPENDENCY_BASE_URL": "https://notifications.example.com",
    "DEPENDENCY_CRITICAL": "false",
    "DEPENDENCY_MAX_ATTEMPTS": "2",
    "BREAKER_RECOVERY_SECONDS": "60",
}


def test_settings_are_parsed_with_the_ingestion_source_by_default() -> None:
    settings = NotificationsSettings.from_environment(ENV)

    assert settings.event_source == "resilient-orders.ingestion"
    assert settings.dependency.name == "notifier" and not settings.dependency.critical
    assert settings.idempotency_ttl_seconds == 86_400
    assert settings.dependency_api_key_secret_arn is None and settings.circuit_events_bus_name is None


def test_optional_variables_are_read() -> None:
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:partner-key"
    settings = NotificationsSettings.from_environment(
        {
            **ENV,
            "EVENT_SOURCE": "other.ingestion",
            "DEPENDENCY_API_KEY_SECRET_ARN": arn,
            "CIRCUIT_EVENTS_BUS_NAME": "circuits-bus",
        }
    )

    assert settings.event_source == "other.ingestion"
    assert settings.dependency_api_key_secret_arn == arn
    assert settings.circuit_events_bus_name == "circuits-bus"


def test_every_missing_variable_is_named_at_once() -> None:
    env = {k: v for k, v in ENV.items() if k not in ("POISON_MESSAGE_QUEUE_URL", "BREAKER_FAILURE_THRESHOLD")}

    with pytest.raises(ConfigurationError) as caught:
        NotificationsSettings.from_environment(env)

    assert "POISON_MESSAGE_QUEUE_URL" in str(caught.value)
    assert "BREAKER_FAILURE_THRESHOLD" in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("IDEMPOTENCY_TTL_SECONDS", "0"),
        ("POISON_MESSAGE_QUEUE_URL", "dlq"),
        ("EVENT_SOURCE", "x" * 257),
        ("DEPENDENCY_CRITICAL", "no"),
    ],
)
def test_invalid_values_are_named(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        NotificationsSettings.from_environment({**ENV, variable: value})
