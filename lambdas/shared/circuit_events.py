"""Announce circuit openings on an event bus, so a rule can start the circuit controller.

Plugged into ``DependencyClient(on_transition=...)`` by the consumers (orders, notifications) and the
fulfilment tasks. One ``PutEvents`` entry per transition INTO ``OPEN`` that this execution environment
makes (CLOSED -> OPEN when the failure threshold trips, HALF_OPEN -> OPEN when a probe fails); other
transitions publish nothing. The event::

    Source       "<POWERTOOLS_SERVICE_NAME>.circuits"
    DetailType   "CircuitOpened"
    Detail       {"circuit": "<circuit name>", "dependency": "<DEPENDENCY_NAME>", "openedAt": <unix seconds>}

``openedAt`` is the ``opened_at`` the breaker wrote to the circuit record (integer unix seconds, as in
the Powertools record), so ``<circuit>-<openedAt>`` names one opening. Several environments can trip the
same circuit at nearly the same moment (the Powertools CLOSED -> OPEN write is not conditional), so a
subscriber must tolerate more than one event per opening: the circuit controller's lock item does.

Publishing never breaks the record being processed: a refused entry (``FailedEntryCount`` > 0) or an
SDK error is logged with the circuit and error code and counted as ``CircuitEventPublishFailures``; the
exception, if any, is not re-raised. The SDK client has short timeouts and one retry, because the
publish runs inline in the call that tripped the breaker.

The source is ``<service>.circuits``, never ``<service>.ingestion``: the ingestion rules cannot match
these events, so the announcement cannot loop back into the work queues.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final, Protocol

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.circuit_breaker import CircuitState, CircuitTransition
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from lambdas.contracts import log_fields as lf
from lambdas.contracts.events import CIRCUIT_OPENED, circuit_events_source
from lambdas.shared import aws

METRIC_PUBLISHED: Final = "CircuitEventsPublished"
METRIC_PUBLISH_FAILURES: Final = "CircuitEventPublishFailures"
PUBLISHED_MESSAGE: Final = "circuit_event_published"
PUBLISH_FAILED_MESSAGE: Final = "circuit_event_publish_failed"

# Inline in the failing call: bounded, and one retry at most (the breaker already tripped; the next
# opening, or the error-rate alarm, is the fallback trigger for the controller).
EVENTS_CLIENT_CONFIG: Final = Config(
    connect_timeout=1, read_timeout=2, retries={"mode": "standard", "max_attempts": 2}
)


class SupportsLog(Protocol):
    def info(self, msg: Any, *args: Any, **kwargs: Any) -> Any: ...

    def error(self, msg: Any, *args: Any, **kwargs: Any) -> Any: ...


class CircuitOpened(BaseModel):
    """The ``detail`` of a CircuitOpened event."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    circuit: str = Field(min_length=1)
    dependency: str = Field(min_length=1)
    openedAt: int = Field(ge=0)


class CircuitEventPublisher:
    """Turns circuit transitions into CircuitOpened events on ``bus_name`` (a bus name or ARN)."""

    def __init__(
        self,
        *,
        bus_name: str,
        service_name: str,
        dependency: str,
        events_client: Any,
        logger: SupportsLog,
        metrics_namespace: str | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.bus_name = bus_name
        self.source = circuit_events_source(service_name)
        self.dependency = dependency
        self._events = events_client
        self._logger = logger
        self._namespace = metrics_namespace
        self._wall_clock = wall_clock

    def on_transition(self, transition: CircuitTransition) -> None:
        """The ``DependencyClient`` hook: publish only when the circuit has just opened."""
        if transition.to_state != CircuitState.OPEN:
            return
        opened_at = transition.opened_at if transition.opened_at is not None else int(self._wall_clock())
        self.publish(
            CircuitOpened(circuit=transition.circuit_name, dependency=self.dependency, openedAt=opened_at)
        )

    def publish(self, detail: CircuitOpened) -> bool:
        """One PutEvents entry; True when EventBridge accepted it. Never raises for an SDK or entry error."""
        entry = {
            "Source": self.source,
            "DetailType": CIRCUIT_OPENED,
            "Detail": detail.model_dump_json(),
            "EventBusName": self.bus_name,
        }
        try:
            response = self._events.put_events(Entries=[entry])
        except (BotoCoreError, ClientError) as exc:
            code = exc.response["Error"].get("Code", "ClientError") if isinstance(exc, ClientError) else ""
            self._failed(detail, code or type(exc).__name__, str(exc))
            return False
        if response.get("FailedEntryCount", 0):
            [result] = response.get("Entries") or [{}]
            self._failed(detail, result.get("ErrorCode", "Unknown"), result.get("ErrorMessage", ""))
            return False
        [result] = response.get("Entries") or [{}]
        self._logger.info(
            PUBLISHED_MESSAGE,
            extra={**self._fields(detail), "event_id": result.get("EventId")},
        )
        self._count(METRIC_PUBLISHED)
        return True

    def _failed(self, detail: CircuitOpened, code: str, message: str) -> None:
        self._logger.error(
            PUBLISH_FAILED_MESSAGE,
            extra={**self._fields(detail), "error_code": code, "error_message": message[:1000]},
        )
        self._count(METRIC_PUBLISH_FAILURES)

    def _fields(self, detail: CircuitOpened) -> dict[str, Any]:
        return {
            "circuit": detail.circuit,
            lf.DEPENDENCY: detail.dependency,
            "opened_at": detail.openedAt,
            "event_bus": self.bus_name,
            "detail_type": CIRCUIT_OPENED,
        }

    def _count(self, name: str) -> None:
        with single_metric(
            name=name,
            unit=MetricUnit.Count,
            value=1,
            namespace=self._namespace,
            default_dimensions={lf.DEPENDENCY: self.dependency},
        ):
            pass


def circuit_event_hook(
    *,
    bus_name: str | None,
    service_name: str,
    dependency: str,
    logger: SupportsLog,
    events_client: Any = None,
) -> Callable[[CircuitTransition], None] | None:
    """The ``on_transition`` hook for a DependencyClient, or None when no bus is configured."""
    if not bus_name:
        return None
    publisher = CircuitEventPublisher(
        bus_name=bus_name,
        service_name=service_name,
        dependency=dependency,
        events_client=events_client or aws.client("events", config=EVENTS_CLIENT_CONFIG),
        logger=logger,
    )
    return publisher.on_transition
