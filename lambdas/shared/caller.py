"""A function that calls one dependency: its settings and its client.

The variables come from ``stacks/downstream_dependency.py::DownstreamDependency.environment()``, which every
caller of a dependency gets (the consumers, the fulfilment tasks and the probe), plus the ServiceFunction
defaults (``stacks/service_function.py``).

``CallerSettings`` (every caller): POWERTOOLS_SERVICE_NAME and every DependencyPolicy variable
(DEPENDENCY_*, BREAKER_*); optional DEPENDENCY_API_KEY_SECRET_ARN (no API key header is sent when unset).

``BreakerCallerSettings`` (a caller through the shared Powertools circuit breaker): as above, plus
CIRCUIT_BREAKER_TABLE_NAME (required) and CIRCUIT_EVENTS_BUS_NAME (optional; CircuitOpened events are
published only when it is set). :func:`breaker_client` builds its client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from aws_lambda_powertools import Logger
from pydantic import Field

from lambdas.contracts import environment as env
from lambdas.shared.api_key import api_key_provider
from lambdas.shared.circuit_events import circuit_event_hook
from lambdas.shared.dependency_client import DependencyClient, DependencyPolicy
from lambdas.shared.env import EnvironmentSettings


class CallerSettings(EnvironmentSettings):
    service_name: str = Field(min_length=1)
    dependency_api_key_secret_arn: str | None = None
    dependency: DependencyPolicy

    REQUIRED: ClassVar[Mapping[str, str]] = {"service_name": env.SERVICE_NAME}
    OPTIONAL: ClassVar[Mapping[str, str]] = {
        "dependency_api_key_secret_arn": env.DEPENDENCY_API_KEY_SECRET_ARN
    }


class BreakerCallerSettings(CallerSettings):
    circuit_breaker_table_name: str = Field(min_length=3, max_length=255)
    # Event bus (name or ARN) for CircuitOpened events (lambdas/shared/circuit_events.py).
    circuit_events_bus_name: str | None = Field(default=None, min_length=1, max_length=1600)

    REQUIRED: ClassVar[Mapping[str, str]] = {
        **CallerSettings.REQUIRED,
        "circuit_breaker_table_name": env.CIRCUIT_BREAKER_TABLE_NAME,
    }
    OPTIONAL: ClassVar[Mapping[str, str]] = {
        **CallerSettings.OPTIONAL,
        "circuit_events_bus_name": env.CIRCUIT_EVENTS_BUS_NAME,
    }


def breaker_client(
    settings: BreakerCallerSettings, logger: Logger, *, events_client: Any = None
) -> DependencyClient:
    """The dependency's client: the shared breaker, the API key (cached with a max age and re-read once on a
    401/403) and, when a bus is configured, the hook that announces circuit openings so the circuit
    controller pauses the callers."""
    return DependencyClient(
        settings.dependency,
        breaker_table_name=settings.circuit_breaker_table_name,
        logger=logger,
        credentials=api_key_provider(settings),
        on_transition=circuit_event_hook(
            bus_name=settings.circuit_events_bus_name,
            service_name=settings.service_name,
            dependency=settings.dependency.name,
            logger=logger,
            events_client=events_client,
        ),
    )
