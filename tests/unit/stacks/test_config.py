"""The stage configuration: merged per stage, validated, errors name the key."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.config import ConfigError, ServiceConfig
from tests.conftest import cdk_context


def _build(stage: str = "dev", mutate=None) -> ServiceConfig:
    context: dict[str, Any] = cdk_context()
    if mutate:
        mutate(context)
    return ServiceConfig.from_context(context["service"], context["stages"], stage)


def test_stage_overrides_are_deep_merged_over_the_service_defaults() -> None:
    dev, prod = _build("dev"), _build("prod")
    assert dev.consumers["orders"].reserved_concurrency == 5
    assert prod.consumers["orders"].reserved_concurrency == 20
    # Keys the stage does not override keep the default.
    assert prod.consumers["orders"].batch_size == dev.consumers["orders"].batch_size
    assert prod.api.throttling_rate_limit == 500
    assert prod.retain_data and not dev.retain_data
    assert prod.stack_name == "resilient-orders-prod"


def test_visibility_timeout_covers_six_timeouts_and_the_batching_window() -> None:
    consumer = _build().consumers["orders"]
    assert (
        consumer.visibility_timeout_seconds == 6 * consumer.timeout_seconds + consumer.batching_window_seconds
    )


def test_unknown_stage_is_named() -> None:
    with pytest.raises(ConfigError, match="stage 'qa' is not defined"):
        _build("qa")


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (
            lambda c: c["service"]["api"].pop("throttling_rate_limit"),
            "api.throttling_rate_limit: Field required",
        ),
        (lambda c: c["service"]["api"].update(throttling_burst_limit=-1), "api.throttling_burst_limit"),
        (lambda c: c["service"].update(log_retention_days=31), "log_retention_days must be one of"),
        (lambda c: c["service"]["alarms"].update(email="not-an-email"), "alarms.email"),
        (lambda c: c["service"]["dependencies"]["partner"].update(base_url="http://plain"), "base_url"),
        (lambda c: c["service"]["consumers"]["orders"].update(unexpected=1), "consumers.orders.unexpected"),
        (lambda c: c["service"]["consumers"]["orders"].update(timeout_seconds="soon"), "timeout_seconds"),
        (
            lambda c: c["service"].update(orders_consumer="missing"),
            "orders_consumer: 'missing' must be one of consumers",
        ),
        (lambda c: c["service"].update(orders_consumer="notifications"), "with a queue of its own"),
        (
            lambda c: c["service"]["consumers"]["notifications"].update(subscription="nobody"),
            "consumers.notifications.subscription: 'nobody' is not an events subscription",
        ),
        (
            lambda c: c["service"]["consumers"]["notifications"].update(timeout_seconds=60),
            "consumers.notifications: events.subscription_visibility_timeout_seconds must be >= 361",
        ),
        (
            lambda c: c["service"]["consumers"]["notifications"].update(subscription="fulfilment"),
            "each events subscription may have one reader",
        ),
        (lambda c: c["service"]["workflows"].update(dependency="nobody"), "workflows.dependency: 'nobody'"),
        (
            lambda c: c["service"]["consumers"]["orders"].update(idempotency_ttl_seconds=3600),
            "consumers.orders.idempotency_ttl_seconds must be >= the queue retention (4 days = 345600 s)",
        ),
        (lambda c: c["service"]["workflows"].update(task_concurrency=1), "workflows.task_concurrency"),
        (
            lambda c: c["service"]["reconciler"].update(schedule_minutes=30),
            "paused_alarm_minutes must be > schedule_minutes",
        ),
        (lambda c: c["service"]["reconciler"].update(schedule_minutes=0), "reconciler.schedule_minutes"),
        # The canary: a request the real calls use, never with a side effect of its own.
        (
            lambda c: c["service"]["dependencies"]["partner"]["canary"].update(method="DELETE"),
            "dependencies.partner.canary.method",
        ),
        (
            lambda c: c["service"]["dependencies"]["partner"]["canary"].update(method="GET"),
            "canary.body: a GET canary takes no body",
        ),
        (
            lambda c: c["service"]["dependencies"]["partner"]["canary"].update(expected_statuses=[201, 500]),
            "canary.expected_statuses must be distinct 2xx codes",
        ),
        (
            lambda c: c["service"]["dependencies"]["partner"]["canary"].update(path="charges"),
            "dependencies.partner.canary.path",
        ),
        # The probe interval is the recovery window, so the probe budget follows from it.
        (
            lambda c: c["service"]["dependencies"]["partner"].update(breaker_recovery_seconds=901),
            "dependencies.partner.breaker_recovery_seconds must be <= 900",
        ),
        (
            lambda c: c["service"]["dependencies"]["partner"].update(breaker_recovery_seconds=10),
            "workflows.controller_max_pause_seconds / dependencies.partner.breaker_recovery_seconds is 1440",
        ),
        (
            lambda c: c["service"]["workflows"].update(controller_max_pause_seconds=28_800),
            "workflows.controller_max_pause_seconds",
        ),
        (
            lambda c: c["service"]["workflows"].update(controller_resume_concurrency=1),
            "workflows.controller_resume_concurrency",
        ),
        (
            lambda c: c["service"]["workflows"].update(controller_max_backoff_seconds=300),
            "workflows.controller_max_backoff_seconds: Extra inputs are not permitted",
        ),
    ],
)
def test_a_bad_or_missing_value_fails_with_its_key(mutate, key: str) -> None:
    with pytest.raises(ConfigError) as error:
        _build(mutate=mutate)
    assert key in str(error.value)
    assert "stages.dev" in str(error.value)


def test_production_must_point_at_real_dependencies() -> None:
    def demo_only(context: dict[str, Any]) -> None:
        context["stages"]["prod"]["dependencies"]["partner"].pop("base_url")

    with pytest.raises(ConfigError, match="production stages must point every dependency at a real base_url"):
        _build("prod", demo_only)


def test_production_must_not_deploy_a_generated_placeholder_key() -> None:
    def generated_key(context: dict[str, Any]) -> None:
        context["stages"]["prod"]["dependencies"]["notifier"].pop("api_key_secret_arn")

    with pytest.raises(ConfigError, match=r"API key secret of every dependency.*\['notifier'\]"):
        _build("prod", generated_key)


def test_production_must_name_the_producers_of_every_route() -> None:
    def open_status_reads(context: dict[str, Any]) -> None:
        context["stages"]["prod"]["api"]["producers"].pop("GET /orders/{id}")

    with pytest.raises(ConfigError, match=r"producers of every API route: \['GET /orders/\{id\}'\]"):
        _build("prod", open_status_reads)


@pytest.mark.parametrize(
    ("producers", "problem"),
    [
        ({"DELETE /orders": ["arn:aws:iam::123456789012:role/x"]}, "not a route of the API"),
        ({"POST /orders": []}, "name at least one"),
        ({"POST /orders": ["order-producer"]}, "not ARNs: \\['order-producer'\\]"),
        ({"POST /orders": ["arn:aws:sts::123456789012:assumed-role/x/s"]}, "not ARNs"),
    ],
)
def test_producers_are_routes_of_the_api_and_iam_principals(producers: dict[str, Any], problem: str) -> None:
    def name(context: dict[str, Any]) -> None:
        context["service"]["api"]["producers"] = producers

    with pytest.raises(ConfigError, match=problem):
        _build("dev", name)


def test_non_production_stages_may_use_the_generated_placeholder() -> None:
    assert all(d.api_key_secret_arn is None for d in _build("dev").dependencies.values())


def test_the_api_key_secret_must_be_a_complete_secret_arn() -> None:
    def partial_arn(context: dict[str, Any]) -> None:
        context["stages"]["prod"]["dependencies"]["partner"]["api_key_secret_arn"] = "partner-api-key"

    with pytest.raises(ConfigError, match="api_key_secret_arn"):
        _build("prod", partial_arn)


def test_config_is_immutable() -> None:
    config = _build()
    with pytest.raises(Exception, match="frozen"):
        config.consumers["orders"].batch_size = 99  # type: ignore[misc]


def test_a_non_critical_dependency_is_not_held_to_the_controller_bounds() -> None:
    # The notifier's consumer falls back instead of pausing: no controller probes it.
    config = _build(
        mutate=lambda c: c["service"]["dependencies"]["notifier"].update(breaker_recovery_seconds=5)
    )
    assert config.paused_dependencies == ["partner"]


def test_the_default_canary_is_the_health_route_and_the_partner_probes_a_dry_run_charge() -> None:
    from stacks.config import CanarySettings

    assert CanarySettings().environment_value() == (
        '{"method":"GET","path":"/health","body":null,"expectedStatuses":[200]}'
    )
    partner = _build().dependencies["partner"].canary
    assert (partner.method, partner.path, partner.expected_statuses) == ("POST", "/charges", [200])


@pytest.mark.parametrize(
    ("start", "maximum", "levels"),
    [(2, 5, [2, 4, 5]), (2, 2, [2]), (2, 20, [2, 4, 8, 16, 20]), (4, 3, [3]), (2, 1000, [2, 4, 8, 16, 32, 64, 128, 256, 512, 1000])],
)  # fmt: skip
def test_a_resumed_consumer_doubles_from_the_resume_level_to_its_maximum(
    start: int, maximum: int, levels: list[int]
) -> None:
    from stacks.config import WorkflowSettings

    assert WorkflowSettings(controller_resume_concurrency=start).resume_levels(maximum) == levels


@pytest.mark.parametrize("factor", [5, 10, 30, 100])
def test_the_local_clouds_compressed_context_is_still_a_valid_config(factor: int) -> None:
    """Compressing breaker_recovery_seconds alone broke the controller's probe budget; its clock moves with it."""
    from localcloud.scenarios import compressed_context

    context, _ = compressed_context(cdk_context(), factor)
    config = ServiceConfig.from_context(context["service"], context["stages"], "dev")
    assert config.workflows.controller_max_pause_seconds <= _build().workflows.controller_max_pause_seconds


@pytest.mark.parametrize(("factor", "cache_seconds"), [(10, 0.5), (4, 1.25), (30, 0.167)])
def test_compression_divides_the_breakers_cache_age_without_rounding_it_to_a_second(
    factor: int, cache_seconds: float
) -> None:
    from localcloud.scenarios import compressed_context

    context, overrides = compressed_context(cdk_context(), factor)
    partner = ServiceConfig.from_context(context["service"], context["stages"], "dev").dependencies["partner"]
    assert partner.breaker_cache_seconds == cache_seconds
    assert any(
        o.key.endswith("partner.breaker_cache_seconds") and o.after == cache_seconds for o in overrides
    )


def test_the_cache_age_is_configured_to_the_millisecond() -> None:
    from stacks.config import DependencySettings

    assert DependencySettings(breaker_cache_seconds=0.25).breaker_cache_seconds == 0.25
    with pytest.raises(ValueError, match=r"multiple of 0\.001"):
        DependencySettings(breaker_cache_seconds=0.0005)
