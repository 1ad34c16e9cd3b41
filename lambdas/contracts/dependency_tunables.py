"""The tunables of calling one dependency (retries, timeouts, circuit breaker), declared once.

A stage sets them in cdk.json (``stacks.config.DependencySettings``, validated at synth, defaults below);
the stack hands them to each caller as environment variables (:func:`environment`, from
``stacks.downstream_dependency``); the caller reads them back (``lambdas.shared.dependency_client``
``DependencyPolicy``, validated at cold start, every variable required). Both pydantic models build these
fields from :data:`TUNABLES`, so a bound, a default or a variable cannot drift between what synth accepts
and what a function accepts (they had: synth accepted delays and thresholds the functions refused at cold
start, and the functions accepted timeouts too short for the client to make an attempt).

Pure like every contract: each side turns a :class:`Tunable` into its own pydantic ``Field``.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Final

# The variables that carry them (their names are the contract between the stack and the functions).
DEPENDENCY_CRITICAL: Final = "DEPENDENCY_CRITICAL"
DEPENDENCY_MAX_ATTEMPTS: Final = "DEPENDENCY_MAX_ATTEMPTS"
DEPENDENCY_BASE_DELAY_MS: Final = "DEPENDENCY_BASE_DELAY_MS"
DEPENDENCY_MAX_DELAY_MS: Final = "DEPENDENCY_MAX_DELAY_MS"
DEPENDENCY_ATTEMPT_TIMEOUT_MS: Final = "DEPENDENCY_ATTEMPT_TIMEOUT_MS"
DEPENDENCY_CONNECT_TIMEOUT_MS: Final = "DEPENDENCY_CONNECT_TIMEOUT_MS"
DEPENDENCY_SAFETY_MARGIN_MS: Final = "DEPENDENCY_SAFETY_MARGIN_MS"
BREAKER_FAILURE_THRESHOLD: Final = "BREAKER_FAILURE_THRESHOLD"
BREAKER_RECOVERY_SECONDS: Final = "BREAKER_RECOVERY_SECONDS"
BREAKER_SUCCESS_THRESHOLD: Final = "BREAKER_SUCCESS_THRESHOLD"
BREAKER_CACHE_SECONDS: Final = "BREAKER_CACHE_SECONDS"


@dataclass(frozen=True)
class Tunable:
    """One tunable: the variable that carries it, its default in cdk.json and its (inclusive) bounds."""

    variable: str
    default: bool | int | float
    ge: float | None = None
    le: float | None = None
    multiple_of: float | None = None

    @property
    def bounds(self) -> dict[str, float]:
        """The bounds that are set, as pydantic ``Field`` keywords."""
        bounds = {"ge": self.ge, "le": self.le, "multiple_of": self.multiple_of}
        return {key: value for key, value in bounds.items() if value is not None}


class DependencyTunables:
    """The fields both models share: each annotation is the field's type and its :class:`Tunable`.

    Type checkers see both models as this class; at run time each side builds the pydantic fields from
    :data:`TUNABLES` (a plain annotation would type the field but drop its bounds).
    """

    # False: a transient failure or an open circuit answers from the last good body (fallback).
    critical: Annotated[bool, Tunable(DEPENDENCY_CRITICAL, True)]
    # Attempts per logical call, the first included (stacks/retry_budget.py multiplies them).
    max_attempts: Annotated[int, Tunable(DEPENDENCY_MAX_ATTEMPTS, 3, ge=1, le=10)]
    # Full-jitter backoff: the n-th retry waits up to min(max_delay_ms, base_delay_ms * 2 ** (n - 1)).
    base_delay_ms: Annotated[int, Tunable(DEPENDENCY_BASE_DELAY_MS, 100, ge=1, le=60_000)]
    max_delay_ms: Annotated[int, Tunable(DEPENDENCY_MAX_DELAY_MS, 2_000, ge=1, le=300_000)]
    # One attempt's read timeout, cut to what is left of the call's budget. At least 50 ms: the client
    # makes no attempt with less (its MIN_READ_TIMEOUT_MS). At most a Lambda invocation's 15 minutes.
    attempt_timeout_ms: Annotated[int, Tunable(DEPENDENCY_ATTEMPT_TIMEOUT_MS, 3_000, ge=50, le=900_000)]
    connect_timeout_ms: Annotated[int, Tunable(DEPENDENCY_CONNECT_TIMEOUT_MS, 1_000, ge=10, le=60_000)]
    # Kept back from the invocation's remaining time for what the function does after its last call.
    safety_margin_ms: Annotated[int, Tunable(DEPENDENCY_SAFETY_MARGIN_MS, 1_000, ge=0, le=900_000)]
    # The fleet's failed logical calls in a row that open the circuit.
    breaker_failure_threshold: Annotated[int, Tunable(BREAKER_FAILURE_THRESHOLD, 5, ge=1, le=1_000)]
    # How long an open circuit waits before a probe.
    breaker_recovery_seconds: Annotated[int, Tunable(BREAKER_RECOVERY_SECONDS, 30, ge=1, le=86_400)]
    # Good probes in a row that close it.
    breaker_success_threshold: Annotated[int, Tunable(BREAKER_SUCCESS_THRESHOLD, 2, ge=1, le=1_000)]
    # How long an execution environment trusts its cached circuit state: how late it learns that
    # another environment opened (or closed) the circuit. Fractional (to the millisecond): a compressed
    # timeline's 0.5 s is that, not a whole second (a call re-reads the state before each retry anyway).
    breaker_cache_seconds: Annotated[
        float, Tunable(BREAKER_CACHE_SECONDS, 5.0, ge=0, le=300, multiple_of=0.001)
    ]


def _table() -> Mapping[str, tuple[type, Tunable]]:
    table = {}
    for name, hint in typing.get_type_hints(DependencyTunables, include_extras=True).items():
        kind, tunable = typing.get_args(hint)
        table[name] = (kind, tunable)
    return MappingProxyType(table)


# field -> (type, Tunable), in declaration order: what each model builds its fields from.
TUNABLES: Final = _table()


def check_delays(tunables: DependencyTunables) -> None:
    """The rule across fields, run by both models' validators: the backoff's cap is not below its base."""
    if tunables.max_delay_ms < tunables.base_delay_ms:
        raise ValueError("max_delay_ms must be >= base_delay_ms")


def environment(tunables: DependencyTunables) -> dict[str, str]:
    """The variables a caller's ``DependencyPolicy`` reads the tunables back from."""
    return {tunable.variable: _render(getattr(tunables, name)) for name, (_, tunable) in TUNABLES.items()}


def _render(value: bool | int | float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"  # the only spellings EnvironmentSettings accepts
    if isinstance(value, float):
        return f"{value:g}"  # "5", "0.5"
    return str(value)
