"""EnvironmentSettings: the one way a function reads its environment (lambdas/shared/env.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import pytest
from pydantic import Field

from lambdas.shared.env import ConfigurationError, EnvironmentSettings


class Inner(EnvironmentSettings):
    flag: bool
    size: int = Field(ge=1)

    REQUIRED: ClassVar[Mapping[str, str]] = {"flag": "INNER_FLAG", "size": "INNER_SIZE"}


class Outer(EnvironmentSettings):
    name: str = Field(min_length=1)
    limit: int = Field(default=5, ge=1)
    inner: Inner

    REQUIRED: ClassVar[Mapping[str, str]] = {"name": "OUTER_NAME"}
    OPTIONAL: ClassVar[Mapping[str, str]] = {"limit": "OUTER_LIMIT"}


ENV = {"OUTER_NAME": " orders ", "INNER_FLAG": "TRUE", "INNER_SIZE": "3"}


def test_values_are_stripped_and_nested_settings_read_from_the_same_environment() -> None:
    settings = Outer.from_environment(ENV)

    assert (settings.name, settings.limit) == ("orders", 5)
    assert settings.inner == Inner(flag=True, size=3)
    assert Outer.from_environment({**ENV, "OUTER_LIMIT": "7"}).limit == 7


def test_a_blank_optional_variable_takes_the_default() -> None:
    assert Outer.from_environment({**ENV, "OUTER_LIMIT": "  "}).limit == 5


def test_missing_and_nested_problems_are_named_together() -> None:
    env = {"OUTER_NAME": "  ", "INNER_FLAG": "yes", "INNER_SIZE": "3"}

    with pytest.raises(ConfigurationError) as caught:
        Outer.from_environment(env)

    message = str(caught.value)
    assert message.startswith("Outer misconfigured: ")
    assert "OUTER_NAME" in message and "INNER_FLAG must be 'true' or 'false'" in message


def test_invalid_values_name_their_variable() -> None:
    with pytest.raises(ConfigurationError, match="OUTER_LIMIT='0'"):
        Outer.from_environment({**ENV, "OUTER_LIMIT": "0"})
    with pytest.raises(ConfigurationError, match="INNER_SIZE='many'"):
        Outer.from_environment({**ENV, "INNER_SIZE": "many"})


def test_settings_are_frozen_and_closed() -> None:
    settings = Outer.from_environment(ENV)
    with pytest.raises(ValueError):
        settings.name = "other"  # type: ignore[misc]
    assert Outer.variables() == {"name": "OUTER_NAME", "limit": "OUTER_LIMIT"}
