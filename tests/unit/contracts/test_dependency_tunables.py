"""The dependency tunables are declared once: the stage's config and the handler's policy validate them
alike, and what the stack renders is what the handler reads back."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from lambdas.contracts import dependency_tunables as tunables
from lambdas.contracts.dependency_tunables import TUNABLES
from lambdas.shared.dependency_client import DependencyPolicy
from lambdas.shared.env import ConfigurationError
from stacks.config import DependencySettings
from tests.unit.helpers import POLICY_ENV

CALLER = {"DEPENDENCY_NAME": "partner", "DEPENDENCY_BASE_URL": "https://partner.example"}


def _constraints(model: type[BaseModel], name: str) -> tuple[Any, list[Any]]:
    field = model.model_fields[name]
    return field.annotation, field.metadata


@pytest.mark.parametrize("name", list(TUNABLES))
def test_both_models_type_and_bound_a_tunable_alike(name: str) -> None:
    kind, tunable = TUNABLES[name]
    assert _constraints(DependencySettings, name) == _constraints(DependencyPolicy, name)
    assert DependencySettings.model_fields[name].annotation is kind
    assert DependencySettings.model_fields[name].default == tunable.default  # the stage's default
    assert DependencyPolicy.model_fields[name].is_required()  # the stack always sets it
    assert DependencyPolicy.REQUIRED[name] == tunable.variable


def test_the_stages_defaults_are_read_back_by_the_handler_unchanged() -> None:
    settings = DependencySettings()
    policy = DependencyPolicy.from_environment(CALLER | tunables.environment(settings))
    assert {name: getattr(policy, name) for name in TUNABLES} == {
        name: getattr(settings, name) for name in TUNABLES
    }


@pytest.mark.parametrize(("cache_seconds", "rendered"), [(5, "5"), (0.25, "0.25"), (0.167, "0.167")])
def test_the_cache_age_is_a_fraction_of_a_second_on_both_sides(cache_seconds: float, rendered: str) -> None:
    settings = DependencySettings(breaker_cache_seconds=cache_seconds, critical=False)
    environment = tunables.environment(settings)
    assert environment[tunables.BREAKER_CACHE_SECONDS] == rendered
    assert environment[tunables.DEPENDENCY_CRITICAL] == "false"
    policy = DependencyPolicy.from_environment(CALLER | environment)
    assert policy.breaker_cache_seconds == cache_seconds
    assert isinstance(policy.breaker_cache_seconds, float)


def test_a_value_synth_refuses_a_function_refuses_too() -> None:
    for stage_value, variable in ((0.0005, "BREAKER_CACHE_SECONDS"), (60_001, "DEPENDENCY_BASE_DELAY_MS")):
        field = next(name for name, (_, t) in TUNABLES.items() if t.variable == variable)
        with pytest.raises(ValueError, match=field):
            DependencySettings(**{field: stage_value})
        with pytest.raises(ConfigurationError, match=variable):
            DependencyPolicy.from_environment({**POLICY_ENV, variable: str(stage_value)})


def test_the_delay_cap_rule_is_one_rule() -> None:
    with pytest.raises(ValueError, match="max_delay_ms must be >= base_delay_ms"):
        DependencySettings(base_delay_ms=500, max_delay_ms=100)
    with pytest.raises(ConfigurationError, match="max_delay_ms must be >= base_delay_ms"):
        DependencyPolicy.from_environment(
            {**POLICY_ENV, "DEPENDENCY_BASE_DELAY_MS": "500", "DEPENDENCY_MAX_DELAY_MS": "100"}
        )
