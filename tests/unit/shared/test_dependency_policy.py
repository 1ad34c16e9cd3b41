"""DependencyPolicy.from_environment and the small pure helpers of the client."""

from __future__ import annotations

import email.utils

import pytest

from lambdas.shared.dependency_client import DependencyPolicy, parse_retry_after, status_class_for
from lambdas.shared.env import ConfigurationError
from tests.unit.helpers import POLICY_ENV

ENV = POLICY_ENV


def test_policy_is_read_from_the_environment() -> None:
    policy = DependencyPolicy.from_environment(ENV)

    assert policy.name == "partner"
    assert policy.base_url == "https://abc.lambda-url.eu-west-1.on.aws"  # Function URL's trailing "/" dropped
    assert policy.critical is True
    assert (policy.max_attempts, policy.base_delay_ms, policy.max_delay_ms) == (3, 100, 2000)
    assert (policy.attempt_timeout_ms, policy.safety_margin_ms, policy.connect_timeout_ms) == (
        3000,
        500,
        1000,
    )
    assert (
        policy.breaker_failure_threshold,
        policy.breaker_recovery_seconds,
        policy.breaker_success_threshold,
    ) == (5, 30, 2)
    assert policy.breaker_cache_seconds == 5
    assert DependencyPolicy.from_environment({**ENV, "DEPENDENCY_CRITICAL": "FALSE"}).critical is False


def test_missing_variables_are_all_named() -> None:
    env = {k: v for k, v in ENV.items() if k not in ("DEPENDENCY_BASE_URL", "BREAKER_RECOVERY_SECONDS")}
    with pytest.raises(ConfigurationError, match="BREAKER_RECOVERY_SECONDS, DEPENDENCY_BASE_URL"):
        DependencyPolicy.from_environment(env)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEPENDENCY_MAX_ATTEMPTS", "three"),
        ("DEPENDENCY_MAX_ATTEMPTS", "0"),
        ("DEPENDENCY_MAX_ATTEMPTS", "11"),
        ("DEPENDENCY_CRITICAL", "yes"),
        ("DEPENDENCY_BASE_URL", "ftp://partner"),
        ("DEPENDENCY_SAFETY_MARGIN_MS", "-1"),
        ("BREAKER_RECOVERY_SECONDS", "1.5"),
        ("DEPENDENCY_NAME", "has spaces"),
    ],
)
def test_bad_values_are_rejected_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        DependencyPolicy.from_environment({**ENV, variable: value})


def test_delay_cap_below_base_delay_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="max_delay_ms must be >= base_delay_ms"):
        DependencyPolicy.from_environment({**ENV, "DEPENDENCY_MAX_DELAY_MS": "50"})


def test_policy_is_immutable() -> None:
    policy = DependencyPolicy.from_environment(ENV)
    with pytest.raises(ValueError):
        policy.max_attempts = 9  # type: ignore[misc]


@pytest.mark.parametrize(("status", "expected"), [(200, "2xx"), (404, "4xx"), (429, "429"), (503, "5xx")])
def test_status_class(status: int, expected: str) -> None:
    assert status_class_for(status) == expected


def test_retry_after_parsing() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(email.utils.formatdate(now + 12, usegmt=True), now) == pytest.approx(12, abs=1)
    assert parse_retry_after(email.utils.formatdate(now - 60, usegmt=True), now) == 0.0  # already past
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("-3", now) is None


def test_the_cache_age_may_be_a_fraction_of_a_second() -> None:
    policy = DependencyPolicy.from_environment({**ENV, "BREAKER_CACHE_SECONDS": "0.5"})
    assert policy.breaker_cache_seconds == 0.5
