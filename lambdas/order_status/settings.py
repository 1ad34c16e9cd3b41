"""The order-status reader's configuration, parsed once from the environment at init.

Required: ORDER_STATUS_TABLE_NAME, CIRCUIT_BREAKER_TABLE_NAME, DEPENDENCY_NAME, BREAKER_RECOVERY_SECONDS,
ORDER_QUEUE_URL, ORDER_QUEUE_BACKLOG_THRESHOLD. Optional (defaults in the model): REQUEST_BUDGET_MS,
RESPONSE_MARGIN_MS, DOWNSTREAM_TIMEOUT_MS, DOWNSTREAM_MAX_ATTEMPTS, SHED_CHECK_TIMEOUT_MS, SHED_CACHE_SECONDS,
SHED_RETRY_AFTER_SECONDS, UNAVAILABLE_RETRY_AFTER_SECONDS.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Final

from pydantic import Field, model_validator

from lambdas.contracts import environment as env
from lambdas.contracts.dependency_tunables import BREAKER_RECOVERY_SECONDS, TUNABLES
from lambdas.shared.env import ConfigurationError, EnvironmentSettings

# API Gateway cuts every integration off at 29 s (stacks.config.API_INTEGRATION_TIMEOUT_SECONDS); the
# budget must leave room for the gateway's own work and the response to travel back.
API_INTEGRATION_TIMEOUT_MS: Final = 29_000
MAX_REQUEST_BUDGET_MS: Final = API_INTEGRATION_TIMEOUT_MS - 1_000
# The dependency's recovery window, within the bounds its callers read it with.
_, _RECOVERY = TUNABLES["breaker_recovery_seconds"]


class StatusReaderSettings(EnvironmentSettings):
    order_status_table_name: str = Field(min_length=3, max_length=255)
    circuit_breaker_table_name: str = Field(min_length=3, max_length=255)
    dependency_name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    breaker_recovery_seconds: int = Field(ge=_RECOVERY.ge, le=_RECOVERY.le)
    order_queue_url: str = Field(pattern=r"^https?://\S+$")
    # Visible messages above which the pipeline is "behind": drain rate x the queue-age alarm threshold.
    order_queue_backlog_threshold: int = Field(ge=1)
    # The whole request, every downstream call included, must finish within this (and the function's time).
    request_budget_ms: int = Field(default=3_000, ge=200, le=MAX_REQUEST_BUDGET_MS)
    # Kept back from the function's remaining time to build and return the response.
    response_margin_ms: int = Field(default=200, ge=0, le=5_000)
    # Cap of one downstream call (all its attempts), within what is left of the budget.
    downstream_timeout_ms: int = Field(default=1_500, ge=50, le=MAX_REQUEST_BUDGET_MS)
    downstream_max_attempts: int = Field(default=2, ge=1, le=5)
    # Cap of each load-shedding check; they fail open, so they must never eat the status read's budget.
    shed_check_timeout_ms: int = Field(default=300, ge=50, le=5_000)
    shed_cache_seconds: int = Field(default=5, ge=0, le=300)
    # Retry-After when shedding for the queue backlog (a circuit gives its own: when the probe is due).
    shed_retry_after_seconds: int = Field(default=30, ge=1, le=3_600)
    # Retry-After when the status table itself could not be read in time.
    unavailable_retry_after_seconds: int = Field(default=2, ge=1, le=3_600)

    REQUIRED: ClassVar[Mapping[str, str]] = {
        "order_status_table_name": "ORDER_STATUS_TABLE_NAME",
        "circuit_breaker_table_name": env.CIRCUIT_BREAKER_TABLE_NAME,
        "dependency_name": env.DEPENDENCY_NAME,
        "breaker_recovery_seconds": BREAKER_RECOVERY_SECONDS,
        "order_queue_url": "ORDER_QUEUE_URL",
        "order_queue_backlog_threshold": "ORDER_QUEUE_BACKLOG_THRESHOLD",
    }
    OPTIONAL: ClassVar[Mapping[str, str]] = {
        "request_budget_ms": "REQUEST_BUDGET_MS",
        "response_margin_ms": "RESPONSE_MARGIN_MS",
        "downstream_timeout_ms": "DOWNSTREAM_TIMEOUT_MS",
        "downstream_max_attempts": "DOWNSTREAM_MAX_ATTEMPTS",
        "shed_check_timeout_ms": "SHED_CHECK_TIMEOUT_MS",
        "shed_cache_seconds": "SHED_CACHE_SECONDS",
        "shed_retry_after_seconds": "SHED_RETRY_AFTER_SECONDS",
        "unavailable_retry_after_seconds": "UNAVAILABLE_RETRY_AFTER_SECONDS",
    }

    @model_validator(mode="after")
    def _fits_in_budget(self) -> StatusReaderSettings:
        if self.downstream_timeout_ms > self.request_budget_ms:
            raise ValueError("DOWNSTREAM_TIMEOUT_MS must not exceed REQUEST_BUDGET_MS")
        return self


__all__ = ["ConfigurationError", "StatusReaderSettings"]
