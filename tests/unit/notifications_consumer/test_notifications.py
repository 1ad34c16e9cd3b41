"""Domain code of the notifications consumer: event -> notification body, and the call's outcomes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from lambdas.notifications_consumer.notifications import (
    NotificationDeferredError,
    NotificationRequest,
    PoisonEventError,
    UnconfirmedNotificationError,
    accepted_source,
    header_safe_key,
    plan,
    send_notification,
)
from lambdas.shared.dependency_client import DependencyResponse
from tests.unit.helpers import make_policy

SOURCE = "resilient-orders.ingestion"


def envelope(detail_type: str, detail: dict[str, Any], **extra: Any) -> str:
    return json.dumps(
        {"id": "evt-1", "detail-type": detail_type, "source": SOURCE, "detail": detail, **extra},
    )


CANCELLED = {
    "orderId": "ord-1",
    "customerId": "cust-1",
    "reason": "fraud_suspected",
    "cancelledAt": "2026-11-25T09:30:00Z",
}


def test_the_accepted_source_is_the_ingestion_source() -> None:
    assert accepted_source("resilient-orders") == SOURCE


def test_an_order_cancellation_notifies_the_customer_about_the_order_and_never_says_why() -> None:
    planned = plan(envelope("OrderCancelled", CANCELLED), source=SOURCE)

    body = planned.request.model_dump(mode="json", exclude_none=True)
    assert body == {"template": "order_cancelled", "customerId": "cust-1", "orderId": "ord-1"}
    assert planned.idempotency_key == "OrderCancelled:ord-1"
    assert "fraud" not in json.dumps(body)


def test_a_customer_update_notifies_the_customer_without_contact_details() -> None:
    detail = {"customerId": "cust-1", "email": "ada@example.com", "displayName": "Ada"}

    planned = plan(envelope("CustomerUpdated", detail), source=SOURCE)

    body = planned.request.model_dump(mode="json", exclude_none=True)
    assert body == {"template": "customer_updated", "customerId": "cust-1"}
    assert planned.idempotency_key == "CustomerUpdated:evt-1"


def test_a_replayed_event_has_its_own_key() -> None:
    planned = plan(envelope("OrderCancelled", CANCELLED, **{"replay-name": "fix-1"}), source=SOURCE)
    assert planned.idempotency_key == "OrderCancelled:ord-1#replay:fix-1"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{not json", "invalid_event"),
        (json.dumps({"id": "evt-1"}), "invalid_event"),
        (envelope("OrderCancelled", {**CANCELLED, "reason": "bored"}), "invalid_event"),
        (envelope("Unknown", {}), "invalid_event"),
        (
            envelope(
                "PaymentReceived",
                {
                    "paymentId": "p-1",
                    "orderId": "ord-1",
                    "amountCents": 1,
                    "currency": "EUR",
                    "method": "card",
                    "receivedAt": "2026-11-25T09:30:00Z",
                },
            ),
            "unsupported_detail_type",
        ),
        (envelope("CustomerUpdated", {"customerId": "cust-1"}, id="evt\n1"), "invalid_idempotency_key"),
    ],
)
def test_poison_is_named(body: str, reason: str) -> None:
    with pytest.raises(PoisonEventError) as caught:
        plan(body, source=SOURCE)
    assert caught.value.reason == reason


def test_only_the_configured_source_is_accepted() -> None:
    with pytest.raises(PoisonEventError, match="unexpected source"):
        plan(envelope("OrderCancelled", CANCELLED), source="other.ingestion")


@pytest.mark.parametrize("key", ["", "k" * 256, "tab\there", "caf\u00e9"])
def test_keys_that_cannot_be_headers_are_poison(key: str) -> None:
    with pytest.raises(PoisonEventError):
        header_safe_key(key)


# ------------------------------------------------------------------------------------------------ sending


@dataclass
class FakeClient:
    """Stands in for DependencyClient: records the call, answers with a canned response."""

    response: DependencyResponse
    calls: list[dict[str, Any]] = field(default_factory=list)
    policy: Any = field(default_factory=lambda: make_policy("http://127.0.0.1:9", name="notifier"))

    def post(self, path: str, **kwargs: Any) -> DependencyResponse:
        self.calls.append({"path": path, **kwargs})
        return self.response


REQUEST = NotificationRequest(template="customer_updated", customerId="cust-1")


def send(client: FakeClient) -> Any:
    return send_notification(
        client, REQUEST, idempotency_key="CustomerUpdated:evt-1", remaining_ms=lambda: 10_000
    )


def test_a_sent_notification_is_confirmed_by_its_id() -> None:
    client = FakeClient(
        DependencyResponse(status=201, body={"notificationId": "nt_1", "extra": 1}, attempts=2)
    )

    sent = send(client)

    assert (sent.notificationId, sent.attempts, sent.replayedByPartner) == ("nt_1", 2, False)
    [call] = client.calls
    assert call["path"] == "/notifications"
    assert call["json"] == {"template": "customer_updated", "customerId": "cust-1"}  # no null orderId
    # The API key is the client's credentials (re-read on a 401/403), never a per-call header here.
    assert call["headers"] == {"Idempotency-Key": "CustomerUpdated:evt-1"}
    assert call["fallback"] is None  # a non-critical client answers an outage with a fallback, never raises


def test_a_replay_at_the_partner_is_reported() -> None:
    client = FakeClient(
        DependencyResponse(
            status=201, body={"notificationId": "nt_1"}, headers={"Idempotent-Replayed": "true"}
        )
    )
    assert send(client).replayedByPartner


@pytest.mark.parametrize("source", ["default", "last_known_good"])
def test_any_fallback_means_deferred(source: str) -> None:
    # A last-known-good body is another notification's answer: it never counts as sent.
    client = FakeClient(
        DependencyResponse(
            status=None, body={"notificationId": "nt_old"}, from_fallback=True, fallback_source=source
        )
    )
    with pytest.raises(NotificationDeferredError) as caught:
        send(client)
    assert caught.value.fallback_source == source


@pytest.mark.parametrize("body", [None, "ok", {}, {"notificationId": ""}])
def test_a_2xx_without_a_notification_id_is_unconfirmed(body: Any) -> None:
    with pytest.raises(UnconfirmedNotificationError):
        send(FakeClient(DependencyResponse(status=200, body=body)))
