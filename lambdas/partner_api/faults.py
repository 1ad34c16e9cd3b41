"""Fault profiles for the demo partner API, shared by the Lambda partner and its local twin.

A profile is stored as JSON in an SSM parameter (Lambda) or set in-process (local twin), e.g.::

    {"error_rate": 0.2, "error_status": 503, "latency_ms": 200, "latency_jitter_ms": 50,
     "throttle_rate": 0.1, "retry_after_seconds": 2, "retry_after_format": "seconds"}
"""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Action = Literal["pass", "throttle", "error"]


@dataclass(frozen=True)
class FaultDecision:
    """What to do with one request: wait ``latency_ms``, then answer ``status`` (or serve it normally)."""

    action: Action
    latency_ms: float = 0.0
    status: int | None = None  # None for "pass"
    retry_after_seconds: int | None = None
    retry_after_format: Literal["seconds", "http-date"] = "seconds"

    @classmethod
    def passthrough(cls, latency_ms: float = 0.0) -> FaultDecision:
        return cls(action="pass", latency_ms=latency_ms)

    @classmethod
    def error(
        cls, status: int = 503, latency_ms: float = 0.0, retry_after_seconds: int | None = None
    ) -> FaultDecision:
        return cls(
            action="error", status=status, latency_ms=latency_ms, retry_after_seconds=retry_after_seconds
        )

    @classmethod
    def throttle(
        cls,
        retry_after_seconds: int | None = 1,
        retry_after_format: Literal["seconds", "http-date"] = "seconds",
        latency_ms: float = 0.0,
    ) -> FaultDecision:
        return cls(
            action="throttle",
            status=429,
            latency_ms=latency_ms,
            retry_after_seconds=retry_after_seconds,
            retry_after_format=retry_after_format,
        )

    def retry_after_header(self, now: float) -> str | None:
        """The Retry-After header value (delta-seconds or an HTTP-date relative to epoch ``now``)."""
        if self.retry_after_seconds is None:
            return None
        if self.retry_after_format == "http-date":
            return email.utils.formatdate(now + self.retry_after_seconds, usegmt=True)
        return str(self.retry_after_seconds)


class FaultProfile(BaseModel):
    """Probabilistic faults applied to every request before it is served."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    error_status: int = Field(default=503, ge=400, le=599)
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    latency_jitter_ms: int = Field(default=0, ge=0, le=60_000)
    throttle_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    retry_after_seconds: int | None = Field(default=1, ge=0, le=3600)
    retry_after_format: Literal["seconds", "http-date"] = "seconds"
    # Only requests to these paths are faulted (None: every path). ["/charges"] is a partner whose
    # health route answers 200 while charges fail.
    paths: tuple[str, ...] | None = None

    @field_validator("error_status")
    @classmethod
    def _not_429(cls, value: int) -> int:
        if value == 429:
            raise ValueError("use throttle_rate for 429 responses")
        return value

    def decide(self, rng: random.Random, path: str | None = None) -> FaultDecision:
        """Draw one decision. Always consumes exactly three random numbers so a seeded rng replays exactly.

        A request to a path outside ``paths`` passes untouched (no latency either).
        """
        jitter_draw, throttle_draw, error_draw = rng.random(), rng.random(), rng.random()
        if self.paths is not None and (path or "").split("?", 1)[0].rstrip("/") not in self.paths:
            return FaultDecision.passthrough()
        latency = self.latency_ms + jitter_draw * self.latency_jitter_ms
        if throttle_draw < self.throttle_rate:
            return FaultDecision.throttle(self.retry_after_seconds, self.retry_after_format, latency)
        if error_draw < self.error_rate:
            return FaultDecision(action="error", status=self.error_status, latency_ms=latency)
        return FaultDecision.passthrough(latency)


HEALTHY: Final = FaultProfile()
PRESETS: Final[dict[str, FaultProfile]] = {
    "healthy": HEALTHY,
    "outage": FaultProfile(error_rate=1.0, error_status=503),
    # The cascade-failure scenario: a dependency that normally answers in ~200 ms now takes 8 s.
    "slow": FaultProfile(latency_ms=8000),
    "throttling": FaultProfile(throttle_rate=1.0, retry_after_seconds=1),
    "error_rate": FaultProfile(error_rate=0.3, error_status=500),
    # A brown-out: every other answer fails, never long enough in a row for a breaker threshold of 5.
    "brownout": FaultProfile(error_rate=0.5, error_status=503),
    # Charges fail while GET /health stays 200: what a health-path probe cannot see.
    "charges_down": FaultProfile(error_rate=1.0, error_status=503, paths=("/charges",)),
}
# Baseline each preset degrades from when used as a two-phase scenario (e.g. 200 ms -> 8 s).
BASELINES: Final[dict[str, FaultProfile]] = {"slow": FaultProfile(latency_ms=200)}


def preset(name: str) -> FaultProfile:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown fault preset {name!r}; choose one of {sorted(PRESETS)}") from None
