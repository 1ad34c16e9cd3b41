"""The notifications consumer end to end: SQS batch of EventBridge events in, partial batch response out.

Real pieces: the handler module (cold-start init included), Powertools batch/idempotency/circuit breaker on
moto DynamoDB, the DLQ on moto SQS, the API key in moto Secrets Manager, and the partner twin over HTTP on
127.0.0.1 (its POST /notifications validates the body, so a 201 means the partner accepted our contract).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lambdas.contracts.metrics import METRIC_NOTIFICATIONS_DEFERRED
from lambdas.partner_api.faults import FaultDecision
from lambdas.shared.env import ConfigurationError
from localcloud.fault_dependency import FaultDependency
from tests.unit.consumer_harness import API_KEY, ConsumerUnderTest, sqs_message, start_consumer
from tests.unit.helpers import (
    REGION,
    import_fresh,
    log_records,
    metric_points,
    unique_name,
)

HANDLER = "lambdas.notifications_consumer.handler"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:123456789012:notifications"


def order_cancelled(order_id: str = "ord-1", customer_id: str = "cust-1") -> dict[str, Any]:
    return {
        "orderId": order_id,
        "customerId": customer_id,
        "reason": "out_of_stock",
        "cancelledAt": "2026-11-25T09:30:00Z",
    }


def customer_updated(customer_id: str = "cust-1") -> dict[str, Any]:
    return {"customerId": customer_id, "email": "ada@example.com"}


def sqs_record(body: Any, *, message_id: str | None = None) -> dict[str, Any]:
    return sqs_message(body, queue_arn=QUEUE_ARN, message_id=message_id)


class Consumer(ConsumerUnderTest):
    @property
    def source(self) -> str:
        return str(self.module.settings.event_source)

    def event(
        self,
        detail_type: str,
        detail: dict[str, Any],
        *,
        event_id: str | None = None,
        source: str | None = None,
        replay_name: str | None = None,
    ) -> dict[str, Any]:
        """An EventBridge envelope as an SQS target of a rule receives it."""
        envelope = {
            "version": "0",
            "id": event_id or str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": source or self.source,
            "account": "123456789012",
            "time": "2026-11-25T09:30:01Z",
            "region": REGION,
            "resources": [],
            "detail": detail,
        }
        if replay_name is not None:
            envelope["replay-name"] = replay_name
        return envelope

    def dlq(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(
            QueueUrl=self.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", []):
            messages.extend(batch)
            for message in batch:
                self.sqs.delete_message(QueueUrl=self.dlq_url, ReceiptHandle=message["ReceiptHandle"])
        return sorted(messages, key=lambda m: m["MessageAttributes"]["SourceMessageId"]["StringValue"])

    def notification_calls(self) -> list[Any]:
        return self.twin.calls("/notifications")


ConsumerFactory = Callable[..., Consumer]


def reasons(messages: list[dict[str, Any]]) -> list[str]:
    return [m["MessageAttributes"]["QuarantineReason"]["StringValue"] for m in messages]


def metric_total(output: str, name: str) -> float:
    return sum(sum(point[name]) for point in metric_points(output, name))


@pytest.fixture
def make_consumer(
    aws: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[ConsumerFactory]:
    twins: list[FaultDependency] = []

    def factory(partner_api_key: str = API_KEY, **env_overrides: str) -> Consumer:
        twin = FaultDependency(api_key=partner_api_key, seed=1).start()
        twins.append(twin)
        monkeypatch.delenv("EVENT_SOURCE", raising=False)
        monkeypatch.delenv("CIRCUIT_EVENTS_BUS_NAME", raising=False)
        env = {
            "IDEMPOTENCY_TTL_SECONDS": "86400",
            "QUEUE_MAX_RECEIVE_COUNT": "5",
            # A fresh circuit per test: Powertools keeps failure counters in module memory.
            "DEPENDENCY_NAME": unique_name("notifier"),
            "DEPENDENCY_CRITICAL": "false",
            **env_overrides,
        }
        return start_consumer(
            Consumer,
            HANDLER,
            twin,
            monkeypatch=monkeypatch,
            capsys=capsys,
            dlq_name="notifications-dlq",
            service="notifications",
            env=env,
        )

    yield factory
    for twin in twins:
        twin.stop()


# ------------------------------------------------------------------------------------------------ sent


def test_each_event_type_notifies_once(make_consumer: ConsumerFactory) -> None:
    consumer = make_consumer()
    cancelled = consumer.event("OrderCancelled", order_cancelled("ord-1"))
    updated = consumer.event("CustomerUpdated", customer_updated("cust-2"), event_id="evt-2")

    failed = consumer.invoke(sqs_record(cancelled), sqs_record(updated))

    assert failed == []
    calls = consumer.notification_calls()
    assert [call.status for call in calls] == [201, 201]  # the partner accepted both bodies
    assert [call.idempotency_key for call in calls] == ["OrderCancelled:ord-1", "CustomerUpdated:evt-2"]
    assert consumer.twin.total_calls == 2
    assert consumer.dlq() == []
    assert metric_points(consumer.output(), "NotificationsSent")[0]["NotificationsSent"] == [1.0, 1.0]


def test_a_duplicate_or_redelivered_event_notifies_once(make_consumer: ConsumerFactory) -> None:
    consumer = make_consumer()
    event = consumer.event("OrderCancelled", order_cancelled("ord-9"))
    # EventBridge delivers at least once (same event, new SQS message); a producer may publish the same
    # cancellation again (new event id, same order): both carry the key OrderCancelled:ord-9.
    republished = consumer.event("OrderCancelled", order_cancelled("ord-9"))

    assert consumer.invoke(sqs_record(event, message_id="m-1"), sqs_record(event, message_id="m-2")) == []
    assert consumer.invoke(sqs_record(event, message_id="m-3"), sqs_record(republished)) == []

    assert [call.idempotency_key for call in consumer.notification_calls()] == ["OrderCancelled:ord-9"]
    out = consumer.output()
    assert metric_total(out, "NotificationsSent") == 1
    assert metric_total(out, "DuplicateEvents") == 3


def test_an_archive_replay_notifies_once_per_replay(make_consumer: ConsumerFactory) -> None:
    consumer = make_consumer()
    original = consumer.event("CustomerUpdated", customer_updated(), event_id="evt-1")
    replayed = consumer.event("CustomerUpdated", customer_updated(), event_id="evt-1", replay_name="fix-1")

    assert consumer.invoke(sqs_record(original)) == []
    # A replay is processed again on purpose (lambdas/shared/events.py), but once: retries stay deduplicated.
    assert consumer.invoke(sqs_record(replayed), sqs_record(replayed)) == []

    assert [call.idempotency_key for call in consumer.notification_calls()] == [
        "CustomerUpdated:evt-1",
        "CustomerUpdated:evt-1#replay:fix-1",
    ]


def test_the_api_key_secret_is_read_once_per_execution_environment(make_consumer: ConsumerFactory) -> None:
    consumer = make_consumer()

    for n in range(3):
        assert (
            consumer.invoke(sqs_record(consumer.event("CustomerUpdated", customer_updated(f"c-{n}")))) == []
        )

    assert len(consumer.secret_reads) == 1
    # The partner accepted the key every time.
    assert [call.status for call in consumer.notification_calls()] == [201, 201, 201]


# ------------------------------------------------------------------------------------------------ deferred


def test_an_outage_defers_notifications_without_holding_the_queue_or_storming(
    make_consumer: ConsumerFactory,
) -> None:
    consumer = make_consumer(BREAKER_FAILURE_THRESHOLD="2")
    consumer.twin.set_profile("outage")
    records = [sqs_record(consumer.event("OrderCancelled", order_cancelled(f"ord-{n}"))) for n in range(6)]

    failed = consumer.invoke(*records)

    assert failed == []  # a non-critical dependency never holds the queue
    # Bounded: 2 calls (DEPENDENCY_MAX_ATTEMPTS) for the first record, 1 for the second (one attempt fewer
    # after a failed call), which tripped the breaker; then none.
    assert consumer.twin.total_calls == 2 + 1
    assert consumer.breaker.state(consumer.module.settings.dependency.name) == "OPEN"
    out = consumer.output()
    assert metric_total(out, "NotificationsDeferred") == 6
    assert metric_total(out, "NotificationsSent") == 0
    deferred = [r for r in log_records(out) if r["message"] == "notification deferred"]
    assert sorted(r["idempotency_key"] for r in deferred) == sorted(
        f"OrderCancelled:ord-{n}" for n in range(6)
    )
    assert {r["event_time"] for r in deferred} == {"2026-11-25T09:30:01Z"}  # what a replay window needs

    # While the circuit is open, further records are deferred without a single call.
    more = [sqs_record(consumer.event("CustomerUpdated", customer_updated(f"c-{n}"))) for n in range(3)]
    assert consumer.invoke(*more) == []
    assert consumer.twin.total_calls == 3
    assert metric_total(consumer.output(), "NotificationsDeferred") == 3
    assert consumer.dlq() == []  # deferred is not poison


def test_deferred_count_has_the_name_namespace_and_dimensions_the_alarm_watches(
    make_consumer: ConsumerFactory,
) -> None:
    # stacks/monitoring.py alarms on METRIC_NOTIFICATIONS_DEFERRED in POWERTOOLS_METRICS_NAMESPACE with {"service": ...}.
    consumer = make_consumer()
    consumer.twin.set_profile("outage")
    assert consumer.invoke(sqs_record(consumer.event("OrderCancelled", order_cancelled()))) == []

    (point,) = metric_points(consumer.output(), METRIC_NOTIFICATIONS_DEFERRED)
    assert point["_dimensions"] == {"service"}
    assert point["service"] == os.environ["POWERTOOLS_SERVICE_NAME"]
    assert point["_aws"]["CloudWatchMetrics"][0]["Namespace"] == os.environ["POWERTOOLS_METRICS_NAMESPACE"]


def test_a_deferred_event_is_still_sent_by_a_later_delivery(make_consumer: ConsumerFactory) -> None:
    consumer = make_consumer()
    event = consumer.event("OrderCancelled", order_cancelled("ord-1"))
    consumer.twin.set_profile("outage")
    assert consumer.invoke(sqs_record(event)) == []
    assert metric_total(consumer.output(), "NotificationsDeferred") == 1

    consumer.twin.set_profile("healthy")
    # No idempotency record was kept for the deferral, so the next delivery of the event (a duplicate, a
    # redrive) sends it instead of replaying "deferred".
    assert consumer.invoke(sqs_record(event)) == []

    assert [call.status for call in consumer.notification_calls()] == [503, 503, 201]
    assert metric_total(consumer.output(), "NotificationsSent") == 1


def test_a_record_without_time_for_a_call_stays_in_the_queue_unsent(make_consumer: ConsumerFactory) -> None:
    """Not deferred (which would delete it unsent): not attempted, reported failed, nothing called."""
    consumer = make_consumer()
    record = sqs_record(consumer.event("OrderCancelled", order_cancelled("ord-3")))

    # A full attempt needs margin 100 + connect 200 + attempt 2000 = 2300 ms.
    assert consumer.invoke(record, remaining_ms=2_299) == [record["messageId"]]

    assert consumer.twin.total_calls == 0
    out = consumer.output()
    assert metric_total(out, "NotificationsDeferred") == 0
    assert metric_total(out, "RecordsNotAttempted") == 1


def test_a_call_that_ran_out_of_time_mid_way_stays_in_the_queue_unsent(
    make_consumer: ConsumerFactory,
) -> None:
    """Started, then the wait for another attempt did not fit: our shortfall, not an outage to defer."""
    consumer = make_consumer()
    consumer.twin.enqueue(FaultDecision.throttle(retry_after_seconds=60))
    record = sqs_record(consumer.event("OrderCancelled", order_cancelled("ord-4")))

    assert consumer.invoke(record) == [record["messageId"]]

    assert len(consumer.notification_calls()) == 1
    out = consumer.output()
    assert metric_total(out, "NotificationsDeferred") == 0
    assert "notification deferred" not in [r["message"] for r in log_records(out)]
    assert consumer.dlq() == []


def test_a_refused_key_keeps_the_record_neither_deferred_nor_quarantined(
    make_consumer: ConsumerFactory,
) -> None:
    consumer = make_consumer(partner_api_key="a-different-key")  # 401, also after re-reading the secret
    record = sqs_record(consumer.event("OrderCancelled", order_cancelled("ord-5")))

    assert consumer.invoke(record) == [record["messageId"]]

    assert [c.status for c in consumer.notification_calls()] == [401]
    assert metric_total(consumer.output(), "NotificationsDeferred") == 0
    assert consumer.dlq() == []


def test_a_critical_notifier_keeps_records_in_the_queue_instead(make_consumer: ConsumerFactory) -> None:
    consumer = make_consumer(DEPENDENCY_CRITICAL="true")
    consumer.twin.set_profile("outage")
    record = sqs_record(consumer.event("OrderCancelled", order_cancelled()))

    assert consumer.invoke(record) == [record["messageId"]]
    assert metric_total(consumer.output(), "NotificationsDeferred") == 0


def test_a_redelivered_record_makes_one_attempt_fewer(make_consumer: ConsumerFactory) -> None:
    """The queue's redelivery is a retry layer: on its second receive a record gets one client attempt."""
    consumer = make_consumer(DEPENDENCY_CRITICAL="true")  # keeps failed records in the queue
    consumer.twin.set_profile("outage")
    record = sqs_record(consumer.event("OrderCancelled", order_cancelled()))
    record["attributes"]["ApproximateReceiveCount"] = "2"

    assert consumer.invoke(record) == [record["messageId"]]
    assert [call.status for call in consumer.notification_calls()] == [503]  # DEPENDENCY_MAX_ATTEMPTS 2


# ------------------------------------------------------------------------------------------------ poison


def test_malformed_envelopes_go_straight_to_the_dlq(make_consumer: ConsumerFactory) -> None:
    consumer = make_consumer()
    bad_detail = order_cancelled()
    del bad_detail["customerId"]
    records = [
        sqs_record("{not json", message_id="m-1-json"),
        sqs_record({"orderId": "ord-1"}, message_id="m-2-not-an-envelope"),
        sqs_record(
            consumer.event("OrderCancelled", order_cancelled(), source="evil.ingestion"), message_id="m-3"
        ),
        sqs_record(consumer.event("OrderCancelled", bad_detail), message_id="m-4-detail"),
        sqs_record(
            consumer.event("CustomerUpdated", customer_updated(), event_id="x" * 300), message_id="m-5"
        ),
    ]

    failed = consumer.invoke(*records)

    assert failed == []  # no retry storm: the poison is already safe in the DLQ
    quarantined = consumer.dlq()
    assert [m["MessageAttributes"]["SourceMessageId"]["StringValue"] for m in quarantined] == [
        "m-1-json",
        "m-2-not-an-envelope",
        "m-3",
        "m-4-detail",
        "m-5",
    ]
    assert reasons(quarantined) == ["invalid_event"] * 4 + ["invalid_idempotency_key"]
    assert quarantined[0]["Body"] == "{not json"  # the original body, byte for byte
    assert (
        "unexpected source 'evil.ingestion'"
        in quarantined[2]["MessageAttributes"]["QuarantineDetail"]["StringValue"]
    )
    assert consumer.twin.total_calls == 0
    out = consumer.output()
    assert metric_total(out, "PoisonMessages") == 5
    logged = [r for r in log_records(out) if r["message"] == "poison message quarantined"]
    assert len(logged) == 5


def test_a_deeply_nested_body_is_quarantined_at_once(make_consumer: ConsumerFactory) -> None:
    consumer = make_consumer()
    nested = sqs_record("[" * 100_000 + "]" * 100_000)

    assert consumer.invoke(nested) == []  # not retried maxReceiveCount times: it fails the same way

    assert reasons(consumer.dlq()) == ["invalid_event"]
    assert consumer.twin.total_calls == 0


def test_unknown_and_unhandled_detail_types_go_to_the_dlq(make_consumer: ConsumerFactory) -> None:
    consumer = make_consumer()
    unknown = consumer.event("OrderShipped", {"orderId": "ord-1"})
    payment = {
        "paymentId": "pay-1",
        "orderId": "ord-1",
        "amountCents": 100,
        "currency": "EUR",
        "method": "card",
        "receivedAt": "2026-11-25T09:31:02Z",
    }
    misrouted = consumer.event("PaymentReceived", payment)  # a valid contract, not a notification event

    assert (
        consumer.invoke(sqs_record(unknown, message_id="m-1"), sqs_record(misrouted, message_id="m-2")) == []
    )

    quarantined = consumer.dlq()
    assert reasons(quarantined) == ["invalid_event", "unsupported_detail_type"]
    assert (
        "unknown detail-type 'OrderShipped'"
        in quarantined[0]["MessageAttributes"]["QuarantineDetail"]["StringValue"]
    )
    assert consumer.twin.total_calls == 0


def test_a_notification_the_partner_rejects_goes_to_the_dlq(make_consumer: ConsumerFactory) -> None:
    consumer = make_consumer()
    consumer.twin.enqueue(FaultDecision.error(400))
    event = consumer.event("OrderCancelled", order_cancelled("ord-1"), event_id="evt-1")
    record = sqs_record(event)

    assert consumer.invoke(record) == []

    [quarantined] = consumer.dlq()
    attributes = {name: value["StringValue"] for name, value in quarantined["MessageAttributes"].items()}
    assert attributes["QuarantineReason"] == "rejected_by_dependency"
    assert attributes["SourceMessageId"] == record["messageId"]
    assert attributes["EventId"] == "evt-1"
    assert attributes["DetailType"] == "OrderCancelled"
    assert attributes["IdempotencyKey"] == "OrderCancelled:ord-1"
    assert json.loads(quarantined["Body"]) == event
    assert len(consumer.notification_calls()) == 1  # a 4xx is never retried
    out = consumer.output()
    assert metric_total(out, "PoisonMessages") == 1
    assert metric_total(out, "NotificationsDeferred") == 0  # a 4xx is our error, not an outage


def test_a_key_reused_for_a_different_notification_is_quarantined(make_consumer: ConsumerFactory) -> None:
    consumer = make_consumer()
    original = consumer.event("OrderCancelled", order_cancelled("ord-1", customer_id="cust-1"))
    conflicting = consumer.event("OrderCancelled", order_cancelled("ord-1", customer_id="cust-2"))

    assert consumer.invoke(sqs_record(original)) == []
    assert consumer.invoke(sqs_record(conflicting)) == []

    [quarantined] = consumer.dlq()
    assert reasons([quarantined]) == ["idempotency_key_reused"]
    assert len(consumer.notification_calls()) == 1


def test_a_poison_record_is_retried_when_the_dlq_send_fails(make_consumer: ConsumerFactory) -> None:
    missing = f"https://sqs.{REGION}.amazonaws.com/123456789012/does-not-exist"
    consumer = make_consumer(POISON_MESSAGE_QUEUE_URL=missing)
    poison = sqs_record("{not json")

    assert consumer.invoke(poison) == [poison["messageId"]]  # never dropped: the redrive policy gets it


# ------------------------------------------------------------------------------------------------ init


def test_misconfiguration_fails_at_init_with_the_variable_names(
    make_consumer: ConsumerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_consumer()
    monkeypatch.delenv("IDEMPOTENCY_TABLE_NAME")
    monkeypatch.setenv("DEPENDENCY_CRITICAL", "maybe")

    with pytest.raises(ConfigurationError) as caught:
        import_fresh(HANDLER)

    assert "IDEMPOTENCY_TABLE_NAME" in str(caught.value)
    assert "DEPENDENCY_CRITICAL" in str(caught.value)
