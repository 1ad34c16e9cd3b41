"""Domain logic of the notifications consumer: which event becomes which notification, and sending it.

Events (the ``notifications`` fan-out subscription, ``cdk.json`` -> ``service.events.subscriptions``) and
the ``POST /notifications`` body each one becomes:

    OrderCancelled   -> {"template": "order_cancelled", "customerId": <customerId>, "orderId": <orderId>}
    CustomerUpdated  -> {"template": "customer_updated", "customerId": <customerId>}

sent with the headers ``Idempotency-Key: <the event's idempotency key>`` (``OrderCancelled:<orderId>``, or
``CustomerUpdated:<event id>``; ``#replay:<name>`` appended for an archive replay, see
``lambdas/shared/events.py``) and ``x-api-key`` when a key is configured. Absent fields are omitted,
never ``null``. Expected answer: a 2xx whose JSON body has a non-empty ``notificationId`` (other fields are
ignored: tolerant reader). A replay of the same key must return the same notificationId, as every POST
route of the partner does.

Why these bodies:
  * ids only: the partner resolves the recipient and renders the template from ``customerId``, so no
    contact detail (email, name) travels in a notification request or sits in its logs;
  * an OrderCancelled ``reason`` is not sent: ``fraud_suspected`` must never reach a customer, and the
    customer-facing text is the same for every reason;
  * CustomerUpdated always notifies (a changed e-mail, name or marketing preference is worth a "your
    profile changed" notice), without saying what changed: the event is thin and the partner has the data.

An event this consumer does not handle (any other detail-type, even a valid contract), an event that
fails its contract, and an idempotency key that cannot travel as a header are poison: they raise
:class:`PoisonEventError` and never reach the partner.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from pydantic import BaseModel, ConfigDict, ValidationError

from lambdas.contracts.api import (
    IDEMPOTENCY_KEY_HEADER,
    IDEMPOTENCY_KEY_PATTERN,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    NOTIFICATIONS_PATH,
)
from lambdas.contracts.events import CUSTOMER_UPDATED, ORDER_CANCELLED
from lambdas.shared.dependency_client import DependencyClient
from lambdas.shared.events import (
    BY_DETAIL_TYPE,
    CustomerUpdated,
    InvalidEventError,
    OrderCancelled,
    ReceivedEvent,
    parse_event,
)
from lambdas.shared.models import (
    NotificationRequest,
    NotificationTemplate,
    PartnerId,
    replayed_by_partner,
)
from lambdas.shared.poison import PoisonMessageError

# The handler counts each deferred notification as metrics.METRIC_NOTIFICATIONS_DEFERRED (EMF, dimension
# ``service``), which the stack alarms on.
# The detail-types of the notifications subscription; anything else on this queue is misrouted.
HANDLED_DETAIL_TYPES: Final = (ORDER_CANCELLED, CUSTOMER_UPDATED)

# Both handled contracts come from the same producer, so there is one accepted source.
_PRODUCERS = {BY_DETAIL_TYPE[detail_type].producer for detail_type in HANDLED_DETAIL_TYPES}
if len(_PRODUCERS) != 1:
    raise RuntimeError(f"handled events come from several producers: {sorted(_PRODUCERS)}")


def accepted_source(service_name: str) -> str:
    """The EventBridge ``source`` of every event this consumer handles, in the service ``service_name``."""
    return BY_DETAIL_TYPE[HANDLED_DETAIL_TYPES[0]].source(service_name)


# ---------------------------------------------------------------------------------------------- contract


class NotificationAccepted(BaseModel):
    """What the partner's 2xx must confirm. Tolerant reader: other fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    notificationId: PartnerId


class SentNotification(BaseModel):
    """The idempotent unit's result (stored with the idempotency record, so keep it small)."""

    model_config = ConfigDict(frozen=True)

    notificationId: str
    template: NotificationTemplate
    idempotencyKey: str
    attempts: int
    # The partner had already accepted this key (e.g. our earlier attempt timed out after it was sent).
    replayedByPartner: bool = False


# ---------------------------------------------------------------------------------------------- errors


class PoisonEventError(PoisonMessageError):
    """The message can never be notified as it is. ``reason`` is machine-readable (DLQ attribute)."""


class NotificationDeferredError(Exception):
    """The dependency is down or its circuit is open: the client handed back its fallback, nothing was sent.

    Raised inside the idempotent unit on purpose: Powertools then deletes the in-progress record, so a
    later delivery of the same event (a duplicate, a redrive) can still send it.
    """

    def __init__(self, *, dependency: str, fallback_source: str | None, attempts: int) -> None:
        super().__init__(f"{dependency} unavailable ({attempts} attempt(s)); notification deferred")
        self.dependency = dependency
        self.fallback_source = fallback_source
        self.attempts = attempts


class UnconfirmedNotificationError(Exception):
    """A 2xx without a notificationId. Retrying is safe: the same Idempotency-Key replays at the partner."""


# ---------------------------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class PlannedNotification:
    event: ReceivedEvent
    idempotency_key: str
    request: NotificationRequest


def notification_for(received: ReceivedEvent) -> NotificationRequest:
    """The notification an event asks for; PoisonEventError for an event this consumer does not handle."""
    detail = received.detail
    if isinstance(detail, OrderCancelled):
        return NotificationRequest(
            template="order_cancelled", customerId=detail.customerId, orderId=detail.orderId
        )
    if isinstance(detail, CustomerUpdated):
        return NotificationRequest(template="customer_updated", customerId=detail.customerId)
    raise PoisonEventError(
        "unsupported_detail_type",
        f"{received.contract.detail_type} is not a notification event (handled: {', '.join(HANDLED_DETAIL_TYPES)})",
    )


def header_safe_key(key: str) -> str:
    """The idempotency key travels as a header: the producers' rule (lambdas/shared/models.py)."""
    if re.fullmatch(IDEMPOTENCY_KEY_PATTERN, key) is None:
        raise PoisonEventError(
            "invalid_idempotency_key",
            f"must be 1..{MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII characters (0x21-0x7E)",
        )
    return key


def plan(body: str, *, source: str) -> PlannedNotification:
    """Parse an SQS body (an EventBridge event) into the notification to send, or raise PoisonEventError."""
    try:
        received = parse_event(body, source=source)
    except InvalidEventError as exc:
        raise PoisonEventError("invalid_event", str(exc)) from None
    request = notification_for(received)
    return PlannedNotification(
        event=received, idempotency_key=header_safe_key(received.idempotency_key), request=request
    )


# ---------------------------------------------------------------------------------------------- sending


def send_notification(
    client: DependencyClient,
    request: NotificationRequest,
    *,
    idempotency_key: str,
    remaining_ms: Callable[[], int],
    max_attempts: int | None = None,
) -> SentNotification:
    """POST {base}/notifications once (with the client's retries, breaker and fallback).

    Raises NotificationDeferredError when a non-critical client answers with its fallback,
    PermanentUpstreamError for a request the partner says can never succeed,
    UnconfirmedNotificationError for a 2xx without a notificationId; everything else the client raises
    (a budget that ran out, a refused key or route, a critical client's transient errors) propagates as
    it is. The client adds the API key (its ``credentials``).
    """
    headers = {IDEMPOTENCY_KEY_HEADER: idempotency_key}
    response = client.post(
        NOTIFICATIONS_PATH,
        json=request.model_dump(mode="json", exclude_none=True),
        headers=headers,
        remaining_ms=remaining_ms,
        # Any fallback body means "not sent" (a last-known-good body is another notification's answer).
        fallback=None,
        max_attempts=max_attempts,
    )
    if response.from_fallback:
        raise NotificationDeferredError(
            dependency=client.policy.name,
            fallback_source=response.fallback_source,
            attempts=response.attempts,
        )
    try:
        accepted = NotificationAccepted.model_validate(response.body)
    except ValidationError as exc:
        raise UnconfirmedNotificationError(
            f"{client.policy.name} answered {response.status} without a notificationId"
        ) from exc
    return SentNotification(
        notificationId=accepted.notificationId,
        template=request.template,
        idempotencyKey=idempotency_key,
        attempts=response.attempts,
        replayedByPartner=replayed_by_partner(response.headers),
    )
