"""Configuration of the fulfilment task functions, parsed once from the environment at init.

The variables are the ones ``stacks/downstream_dependency.py::DownstreamDependency.environment()`` gives
every caller of a dependency (the order consumer gets the same block), plus the ServiceFunction defaults.

``CallerSettings`` (every caller): POWERTOOLS_SERVICE_NAME and every DependencyPolicy variable
(DEPENDENCY_*, BREAKER_*); optional DEPENDENCY_API_KEY_SECRET_ARN.

``ProbeSettings`` (``probe``): as above, plus optional PROBE_TIMEOUT_MS (default 2000): the whole
probe, connect + read, must fit in it; and optional PROBE_CANARY, the JSON request it sends
(``stacks.config.CanarySettings.environment_value``; default ``GET /health`` expecting 200).

``TaskSettings`` (``charge``, ``ship``, ``notify``): as above, plus CIRCUIT_BREAKER_TABLE_NAME (required)
and CIRCUIT_EVENTS_BUS_NAME (optional; CircuitOpened events are published only when it is set).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, Json, ValidationError

from lambdas.shared.dependency_client import DependencyPolicy
from lambdas.shared.env import (
    ConfigurationError,
    read_optional,
    read_required,
    validation_error_to_config_error,
)


class CallerSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    service_name: str = Field(min_length=1)
    dependency_api_key_secret_arn: str | None = None
    dependency: DependencyPolicy

    REQUIRED: ClassVar[dict[str, str]] = {"service_name": "POWERTOOLS_SERVICE_NAME"}
    OPTIONAL: ClassVar[dict[str, str]] = {"dependency_api_key_secret_arn": "DEPENDENCY_API_KEY_SECRET_ARN"}

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


class Canary(BaseModel):
    """The probe's request; validated at synth by ``stacks.config.CanarySettings``, shape-checked here."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal["GET", "HEAD", "POST", "PUT"] = "GET"
    path: str = Field(default="/health", pattern=r"^/")
    body: dict[str, Any] | list[Any] | None = None
    expectedStatuses: tuple[int, ...] = Field(default=(200,), min_length=1)

    @property
    def read_only(self) -> bool:
        return self.method in ("GET", "HEAD")


class ProbeSettings(CallerSettings):
    probe_timeout_ms: int = Field(default=2000, ge=100, le=25_000)
    probe_canary: Json[Canary] = Canary()

    OPTIONAL: ClassVar[dict[str, str]] = {
        **CallerSettings.OPTIONAL,
        "probe_timeout_ms": "PROBE_TIMEOUT_MS",
        "probe_canary": "PROBE_CANARY",
    }

    @property
    def probe_policy(self) -> DependencyPolicy:
        """The dependency's policy for one canary call: a single attempt whose connect + read fit in
        PROBE_TIMEOUT_MS (connect at most half of it), and never a fallback: a probe answered from a cache
        would call a dead dependency healthy."""
        policy = self.dependency
        connect_ms = min(policy.connect_timeout_ms, self.probe_timeout_ms // 2)
        read_ms = min(policy.attempt_timeout_ms, self.probe_timeout_ms - connect_ms)
        return policy.model_copy(
            update={
                "max_attempts": 1,
                "critical": True,
                "connect_timeout_ms": connect_ms,
                "attempt_timeout_ms": read_ms,
            }
        )


class TaskSettings(CallerSettings):
    circuit_breaker_table_name: str = Field(min_length=3, max_length=255)
    circuit_events_bus_name: str | None = Field(default=None, min_length=1, max_length=1600)

    REQUIRED: ClassVar[dict[str, str]] = {
        **CallerSettings.REQUIRED,
        "circuit_breaker_table_name": "CIRCUIT_BREAKER_TABLE_NAME",
    }
    OPTIONAL: ClassVar[dict[str, str]] = {
        **CallerSettings.OPTIONAL,
        "circuit_events_bus_name": "CIRCUIT_EVENTS_BUS_NAME",
    }
