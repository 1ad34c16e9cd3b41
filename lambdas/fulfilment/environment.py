"""Configuration of the fulfilment task functions, parsed once from the environment at init.

Every caller's settings are ``lambdas/shared/caller.py``'s (the order consumer gets the same block).

``ProbeSettings`` (``probe``): ``CallerSettings``, plus optional PROBE_TIMEOUT_MS (default 2000): the whole
probe, connect + read, must fit in it; and optional PROBE_CANARY, the JSON request it sends
(``stacks.config.CanarySettings.environment_value``; default ``GET /health`` expecting 200).

``TaskSettings`` (``charge``, ``ship``, ``notify``): ``BreakerCallerSettings`` (CIRCUIT_BREAKER_TABLE_NAME
required, CIRCUIT_EVENTS_BUS_NAME optional: CircuitOpened events are published only when it is set).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, Json

from lambdas.shared.caller import BreakerCallerSettings, CallerSettings
from lambdas.shared.dependency_client import DependencyPolicy


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

    OPTIONAL: ClassVar[Mapping[str, str]] = {
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


class TaskSettings(BreakerCallerSettings):
    """A task's settings: a caller through the shared breaker, nothing more."""
