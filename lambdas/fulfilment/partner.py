"""The partner dependency as the fulfilment tasks see it: the client, the API key, the circuit hook.

Built once per execution environment (module import of a task handler) from ``TaskSettings``, with the
pieces the consumers use: ``api_key_provider`` (the secret cached with a max age and re-read once on a
401/403, by the client) and the CircuitOpened hook
(``lambdas/shared/circuit_events.py``), so the tasks and the consumers call the partner, trip the
shared Powertools circuit and announce openings the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger

from lambdas.fulfilment.environment import TaskSettings
from lambdas.shared.api_key import api_key_provider
from lambdas.shared.circuit_events import circuit_event_hook
from lambdas.shared.dependency_client import DependencyClient
from lambdas.shared.models import IDEMPOTENCY_KEY_HEADER


@dataclass(frozen=True)
class Partner:
    client: DependencyClient

    @property
    def name(self) -> str:
        return self.client.policy.name

    def headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        # The API key is the client's (its credentials), not a per-call header.
        return {IDEMPOTENCY_KEY_HEADER: idempotency_key} if idempotency_key is not None else {}


def connect(settings: TaskSettings, logger: Logger, *, events_client: Any = None) -> Partner:
    """Client with the shared breaker (and the CircuitOpened hook when a bus is configured) + API key."""
    hook = circuit_event_hook(
        bus_name=settings.circuit_events_bus_name,
        service_name=settings.service_name,
        dependency=settings.dependency.name,
        logger=logger,
        events_client=events_client,
    )
    client = DependencyClient(
        settings.dependency,
        breaker_table_name=settings.circuit_breaker_table_name,
        logger=logger,
        credentials=api_key_provider(settings),
        on_transition=hook,
    )
    return Partner(client=client)
