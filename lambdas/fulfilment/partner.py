"""The partner dependency as the fulfilment tasks see it: the client, the API key, the circuit hook.

Built once per execution environment (module import of a task handler) from ``TaskSettings`` by the
consumers' own ``lambdas.shared.caller.breaker_client`` (the API key cached with a max age and re-read once
on a 401/403, the CircuitOpened hook), so the tasks and the consumers call the partner, trip the shared
Powertools circuit and announce openings the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger

from lambdas.contracts.api import IDEMPOTENCY_KEY_HEADER
from lambdas.fulfilment.environment import TaskSettings
from lambdas.shared.caller import breaker_client
from lambdas.shared.dependency_client import DependencyClient


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
    return Partner(client=breaker_client(settings, logger, events_client=events_client))
