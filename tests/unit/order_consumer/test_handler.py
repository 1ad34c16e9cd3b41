"""The order consumer handler end to end: SQS batch in, partial batch response out.

Real pieces: the handler module (cold-start init included), Powertools batch/idempotency/circuit breaker on
moto DynamoDB, the DLQ on moto SQS, the API key in moto Secrets Manager, and the partner twin over HTTP.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from lambdas.contracts.metrics import (
    CALL_OUTCOME_CONFIGURATION,
    DIMENSION_OUTCOME,
    METRIC_IDEMPOTENCY_STORE_ERRORS,
    METRIC_LOGICAL_CALLS,
)
from lambdas.partner_api.faults import FaultDecision, FaultProfile
from lambdas.shared.dependency_tries import LAST_FAILURE_ATTRIBUTE, TRIES_ATTRIBUTE, TRIES_KEY_PREFIX
from lambdas.shared.env import ConfigurationError
from lambdas.shared.retry_visibility import BACKOFF_MESSAGE
from lambdas.shared.stores import IDEMPOTENCY_STORE_UNAVAILABLE_MESSAGE
from localcloud.fault_dependency import FaultDependency
from tests.unit.consumer_harness import API_KEY, ConsumerUnderTest, sqs_message, start_consumer
from tests.unit.helpers import (
    REGION,
    FakeLambdaContext,
    import_fresh,
    log_records,
    metric_points,
)

HANDLER = "lambdas.order_consumer.handler"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:123456789012:orders"


def order(order_id: str = "ord-1", amount: int = 1250) -> dict[str, Any]:
    return {
        "orderId": order_id,
        "customerId": "cust-1",
        "items": [{"sku": "SKU-001", "quantity": 2}],
        "amountCents": amount,
        "currency": "EUR",
    }


def sqs_record(
    body: Any,
    *,
    message_id: str | None = None,
    idempotency_key: str | None = None,
    producer: str | None = None,
) -> dict[str, Any]:
    attributes = {"IdempotencyKey": idempotency_key, "ProducerArn": producer}
    return sqs_message(
        body,
        queue_arn=QUEUE_ARN,
        message_id=message_id,
        attributes={name: value for name, value in attributes.items() if value is not None},
    )


class Consumer(ConsumerUnderTest):
    def dlq(self) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(
            QueueUrl=self.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", [])
        return sorted(messages, key=lambda m: m["MessageAttributes"]["SourceMessageId"]["StringValue"])

    def charge_calls(self) -> int:
        return len(self.twin.calls("/charges"))


ConsumerFactory = Callable[..., Consumer]


def in_flight_orders(
    consumer: Consumer, *, count: int, visibility_s: int
) -> tuple[str, list[dict[str, Any]]]:
    """Orders ord-1..ord-<count> sent to a real queue and received as the event source would (in flight
    for ``visibility_s``), as Lambda records in order-id order; returns (queue URL, records)."""
    queue_url = consumer.sqs.create_queue(
        QueueName="orders", Attributes={"VisibilityTimeout": str(visibility_s)}
    )["QueueUrl"]
    for n in range(1, count + 1):
        consumer.sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(order(f"ord-{n}")))
    taken = consumer.sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=count, VisibilityTimeout=visibility_s
    )
    records = [
        {**sqs_record(m["Body"], message_id=m["MessageId"]), "receiptHandle": m["ReceiptHandle"]}
        for m in sorted(taken["Messages"], key=lambda m: json.loads(m["Body"])["orderId"])
    ]
    return queue_url, records


@pytest.fixture
def make_consumer(
    aws: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[ConsumerFactory]:
    twins: list[FaultDependency] = []

    def factory(partner_api_key: str = API_KEY, **env_overrides: str) -> Consumer:
        twin = FaultDependency(api_key=partner_api_key, seed=1).start()
        twins.append(twin)
        return start_consumer(
            Consumer,
            HANDLER,
            twin,
            monkeypatch=monkeypatch,
            capsys=capsys,
            dlq_name="orders-dlq",
            service="order-consumer",
            env={"DEPENDENCY_MAX_TRIES": "6", **env_overrides},
        )

    yield factory
    for twin in twins:
        twin.stop()


def test_valid_orders_are_charged(make_consumer: ConsumerFactory) -> None:
    consumer = make_consumer()

    failed = consumer.invoke(sqs_record(order("ord-1")), sqs_record(order("ord-2")))

    assert failed == []
    assert consumer.twin.charges_by_order() == {"ord-1": 1, "ord-2": 1}
    assert metric_points(consumer.output(), "OrdersProcessed")[0]["OrdersProcessed"] == [1.0, 1.0]


def test_poison_records_go_straight_to_the_dlq_and_are_not_retried(make_consumer: ConsumerFactory) -> None:
    consumer = make_consumer()
    good = sqs_record(order("ord-1"), message_id="m-0-good")
    bad_json = sqs_record("{not json", message_id="m-1-json")
    bad_schema = sqs_record({**order("ord-3"), "amountCents": "lots"}, message_id="m-2-schema")
    bad_key = sqs_record(order("ord-4"), message_id="m-3-key", idempotency_key="x" * 300)

    failed = consumer.invoke(good, bad_json, bad_schema, bad_key)

    assert failed == []  # no retry storm: the poison is already safe in the DLQ
    quarantined = consumer.dlq()
    assert [m["MessageAttributes"]["SourceMessageId"]["StringValue"] for m in quarantined] == [
        "m-1-json",
        "m-2-schema",
        "m-3-key",
    ]
    assert [m["MessageAttributes"]["QuarantineReason"]["StringValue"] for m in quarantined] == [
        "invalid_json",
        "schema_violation",
        "invalid_idempotency_key",
    ]
    assert quarantined[0]["Body"] == "{not json"  # the original body, byte for byte
    assert consumer.twin.charges_by_order() == {"ord-1": 1}
    out = consumer.output()
    logged = [r for r in log_records(out) if r["message"] == "poison message quarantined"]
    assert {r["message_id"] for r in logged} == {"m-1-json", "m-2-schema", "m-3-key"}
    assert metric_points(out, "PoisonMessages")[0]["PoisonMessages"] == [1.0, 1.0, 1.0]


def test_a_poison_record_is_retried_when_the_dlq_send_fails(make_consumer: ConsumerFactory) -> None:
    missing = f"https://sqs.{REGION}.amazonaws.com/123456789012/does-not-exist"
    consumer = make_consumer(POISON_MESSAGE_QUEUE_URL=missing)
    poison = sqs_record("{not json")

    failed = consumer.invoke(sqs_record(order()), poison)

    assert failed == [poison["messageId"]]  # never dropped: the redrive policy still gets it to the DLQ


def test_a_transient_failure_fails_only_that_record_and_a_redelivery_succeeds(
    make_consumer: ConsumerFactory,
) -> None:
    consumer = make_consumer()
    consumer.twin.set_profile("outage")
    first = sqs_record(order("ord-1"))

    assert consumer.invoke(first) == [first["messageId"]]
    assert consumer.charge_calls() == 2  # DEPENDENCY_MAX_ATTEMPTS
    assert consumer.twin.charges_by_order() == {}

    consumer.twin.set_profile("healthy")
    # The failed attempt left no idempotency record behind, so the redelivered message is processed.
    assert consumer.invoke(first) == []
    assert consumer.twin.charges_by_order() == {"ord-1": 1}


def tries_of(consumer: Consumer, key: str) -> dict[str, Any]:
    """The record's try count item in the idempotency table ({} when there is none)."""
    item = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName="idempotency", Key={"id": {"S": f"{TRIES_KEY_PREFIX}#{key}"}}
    )
    return item.get("Item", {})


def set_tries(key: str, tries: int) -> None:
    boto3.client("dynamodb", region_name=REGION).put_item(
        TableName="idempotency",
        Item={"id": {"S": f"{TRIES_KEY_PREFIX}#{key}"}, TRIES_ATTRIBUTE: {"N": str(tries)}},
    )


@pytest.mark.parametrize(("tries_before", "calls"), [(0, 3), (1, 2), (2, 1), (5, 1)])
def test_each_try_of_a_record_makes_one_attempt_fewer_down_to_one(
    make_consumer: ConsumerFactory, tries_before: int, calls: int
) -> None:
    """The consumer's tries are a retry layer: 3 attempts x 6 tries would be 18 calls; this is 9. The
    receive count does not matter: receives that made no call are not tries."""
    consumer = make_consumer(DEPENDENCY_MAX_ATTEMPTS="3")
    consumer.twin.set_profile("outage")
    record = sqs_record(order("ord-1"), message_id="m-1")
    record["attributes"]["ApproximateReceiveCount"] = "9"
    set_tries("m-1", tries_before)

    assert consumer.invoke(record) == [record["messageId"]]
    assert consumer.charge_calls() == calls
    assert tries_of(consumer, "m-1")[TRIES_ATTRIBUTE] == {"N": str(tries_before + 1)}
    assert tries_of(consumer, "m-1")[LAST_FAILURE_ATTRIBUTE]["S"].startswith("TransientUpstreamError")


def test_a_record_that_failed_all_its_tries_is_quarantined_with_the_last_failure_and_forgotten(
    make_consumer: ConsumerFactory,
) -> None:
    consumer = make_consumer(DEPENDENCY_MAX_TRIES="2")
    consumer.twin.set_profile("outage")
    record = sqs_record(order("ord-1"), message_id="m-1")

    assert consumer.invoke(record) == [record["messageId"]]  # try 1
    assert consumer.invoke(record) == [record["messageId"]]  # try 2
    calls = consumer.charge_calls()
    assert consumer.invoke(record) == []  # no third try: quarantined, not called

    assert consumer.charge_calls() == calls
    [quarantined] = consumer.dlq()
    attributes = quarantined["MessageAttributes"]
    assert attributes["QuarantineReason"]["StringValue"] == "retries_exhausted"
    assert "2 tries failed" in attributes["QuarantineDetail"]["StringValue"]
    assert "TransientUpstreamError" in attributes["QuarantineDetail"]["StringValue"]
    assert tries_of(consumer, "m-1") == {}  # a redrive gets its tries afresh
    consumer.twin.set_profile("healthy")
    assert consumer.invoke(record) == []
    assert consumer.twin.charges_by_order() == {"ord-1": 1}


def test_receives_without_a_call_are_not_tries(make_consumer: ConsumerFactory) -> None:
    """Refused by an open circuit (or never started for lack of time), a receive leaves the count alone:
    a long outage cannot walk a record out of the queue by receives the partner never saw."""
    consumer = make_consumer(BREAKER_FAILURE_THRESHOLD="1", DEPENDENCY_MAX_TRIES="2")
    consumer.twin.set_profile("outage")
    tripping = sqs_record(order("ord-1"), message_id="m-1")
    assert consumer.invoke(tripping) == [tripping["messageId"]]  # one try, and the circuit opens
    assert consumer.breaker.state(consumer.module.settings.dependency.name) == "OPEN"

    refused = sqs_record(order("ord-2"), message_id="m-2")
    for _ in range(5):
        assert consumer.invoke(refused) == [refused["messageId"]]
    assert consumer.invoke(tripping) == [tripping["messageId"]]

    assert tries_of(consumer, "m-2")[TRIES_ATTRIBUTE] == {"N": "0"}
    assert tries_of(consumer, "m-1")[TRIES_ATTRIBUTE] == {"N": "1"}
    assert consumer.dlq() == []


def test_an_open_circuit_fails_records_fast_without_calling_the_dependency(
    make_consumer: ConsumerFactory,
) -> None:
    consumer = make_consumer(BREAKER_FAILURE_THRESHOLD="1")
    consumer.twin.set_profile("outage")
    tripping = sqs_record(order("ord-1"))
    assert consumer.invoke(tripping) == [tripping["messageId"]]
    assert consumer.breaker.state(consumer.module.settings.dependency.name) == "OPEN"
    calls = consumer.twin.total_calls
    # Were it called, every attempt would now take a full second: "fast" below is then a real signal.
    consumer.twin.set_profile(FaultProfile(error_rate=1.0, latency_ms=1000))

    later = [sqs_record(order(f"ord-{n}")) for n in range(2, 5)]
    started = time.monotonic()
    failed = consumer.invoke(*later)

    assert failed == [r["messageId"] for r in later]  # they stay in the queue for a later retry
    assert consumer.twin.total_calls == calls
    # Called, the three records would take at least 3 s (two 1 s attempts each): well apart on any machine.
    assert time.monotonic() - started < 3.0
    assert len(metric_points(consumer.output(), "CircuitOpenRejections")) == 3


def test_records_failed_by_an_open_circuit_come_back_when_it_lets_a_probe_through(
    make_consumer: ConsumerFactory,
) -> None:
    consumer = make_consumer(BREAKER_FAILURE_THRESHOLD="1", BREAKER_RECOVERY_SECONDS="30")
    consumer.twin.set_profile("outage")
    _, records = in_flight_orders(consumer, count=4, visibility_s=180)

    started = time.monotonic()
    failed = consumer.invoke(*records)
    took_s = time.monotonic() - started

    assert sorted(failed) == sorted(r["messageId"] for r in records)
    assert consumer.breaker.state(consumer.module.settings.dependency.name) == "OPEN"
    backoff = [r for r in log_records(consumer.output()) if r["message"] == BACKOFF_MESSAGE]
    delays = backoff[0]["visible_in_seconds"]
    # The record that tripped the circuit backs off up to 1 s (first receive); the three that met the
    # open circuit come back once its 30 s recovery window has passed (+ up to 1 s of jitter), not in
    # 180 s. The circuit's remaining time is read during the invocation, after opening: what is left of
    # the window then, rounded up, so at most the invocation's own duration less than 30 (a busy host
    # has seen 29).
    tripping = records[0]["messageId"]
    assert delays[tripping] in (0, 1)
    for delay in (v for k, v in delays.items() if k != tripping):
        assert 30 - math.ceil(took_s) <= delay <= 31, (delay, took_s)
    assert len(metric_points(consumer.output(), "RecordsBackedOff")) <= 1


def test_duplicate_delivery_is_charged_once(make_consumer: ConsumerFactory) -> None:
    consumer = make_consumer()
    body = order("ord-9")

    assert (
        consumer.invoke(
            sqs_record(body, message_id="m-1", idempotency_key="client-key-1"),
            sqs_record(body, message_id="m-2", idempotency_key="client-key-1"),
        )
        == []
    )
    assert consumer.invoke(sqs_record(body, message_id="m-3", idempotency_key="client-key-1")) == []

    assert consumer.charge_calls() == 1  # the partner was called once, not three times
    assert consumer.twin.charges_by_order() == {"ord-9": 1}
    assert consumer.twin.calls("/charges")[0].idempotency_key == "client-key-1"
    replays = metric_points(consumer.output(), "IdempotentReplays")
    assert sum(sum(p["IdempotentReplays"]) for p in replays) == 2


def test_without_an_idempotency_key_the_message_id_is_used(make_consumer: ConsumerFactory) -> None:
    consumer = make_consumer()
    record = sqs_record(order("ord-5"), message_id="msg-abc")

    assert consumer.invoke(record) == []
    assert consumer.invoke(record) == []  # SQS at-least-once: the same message delivered again

    assert [c.idempotency_key for c in consumer.twin.calls("/charges")] == ["msg-abc"]


ORDER_PRODUCER = "arn:aws:sts::123456789012:assumed-role/order-producer/session-1"
OTHER_PRODUCER = "arn:aws:sts::123456789012:assumed-role/customer-service/session-1"


def test_a_producers_key_is_scoped_by_the_producer_here_and_at_the_partner(
    make_consumer: ConsumerFactory,
) -> None:
    """Two producers may pick the same key for different orders: both are charged, neither is refused.
    The same producer from another session is the same producer: its resend is absorbed."""
    consumer = make_consumer()
    mine = sqs_record(order("ord-1", amount=100), idempotency_key="k-1", producer=ORDER_PRODUCER)
    theirs = sqs_record(order("ord-2", amount=999), idempotency_key="k-1", producer=OTHER_PRODUCER)
    resent = sqs_record(
        order("ord-1", amount=100),
        idempotency_key="k-1",
        producer=ORDER_PRODUCER.replace("session-1", "session-2"),
    )

    assert consumer.invoke(mine, theirs) == []
    assert consumer.invoke(resent) == []

    assert consumer.dlq() == []
    assert consumer.twin.charges_by_order() == {"ord-1": 1, "ord-2": 1}
    keys = [c.idempotency_key for c in consumer.twin.calls("/charges")]
    assert len(keys) == 2 and len(set(keys)) == 2
    assert all(key is not None and re.fullmatch(r"[0-9a-f]{64}", key) for key in keys)  # a valid header


def test_a_reused_key_with_a_different_order_is_quarantined(make_consumer: ConsumerFactory) -> None:
    consumer = make_consumer()
    original = sqs_record(order("ord-1", amount=100), idempotency_key="k-1")
    conflicting = sqs_record(order("ord-1", amount=999), idempotency_key="k-1")

    assert consumer.invoke(original) == []
    assert consumer.invoke(conflicting) == []

    [quarantined] = consumer.dlq()
    assert quarantined["MessageAttributes"]["QuarantineReason"]["StringValue"] == "idempotency_key_reused"
    assert quarantined["MessageAttributes"]["IdempotencyKey"]["StringValue"] == "k-1"
    assert consumer.charge_calls() == 1


@pytest.mark.parametrize("status", [400, 422])
def test_an_order_the_partner_rejects_is_quarantined(make_consumer: ConsumerFactory, status: int) -> None:
    consumer = make_consumer()
    consumer.twin.enqueue(FaultDecision.error(status))
    record = sqs_record(order("ord-1"))

    assert consumer.invoke(record) == []

    [quarantined] = consumer.dlq()
    assert quarantined["MessageAttributes"]["QuarantineReason"]["StringValue"] == "rejected_by_dependency"
    assert consumer.charge_calls() == 1  # a request that can never succeed is never retried


def test_a_refused_key_fails_the_record_without_quarantine_and_counts_toward_the_breaker(
    make_consumer: ConsumerFactory,
) -> None:
    # The partner expects another key than the secret holds: 401, also after re-reading the secret.
    consumer = make_consumer(partner_api_key="a-different-key", BREAKER_FAILURE_THRESHOLD="2")
    records = [sqs_record(order(f"ord-{n}")) for n in range(3)]

    assert consumer.invoke(*records) == [r["messageId"] for r in records]

    assert consumer.dlq() == []  # nothing is wrong with the orders
    assert consumer.charge_calls() == 2  # one attempt each (the re-read found no new key), then the circuit
    assert consumer.breaker.state(consumer.module.settings.dependency.name) == "OPEN"
    # Read at init, then one forced re-read: a wrong key does not turn every record into a secret read.
    assert len(consumer.secret_reads) == 2
    out = consumer.output()
    assert "PoisonMessages" not in out
    logical = metric_points(out, METRIC_LOGICAL_CALLS)
    assert [p[DIMENSION_OUTCOME] for p in logical] == [CALL_OUTCOME_CONFIGURATION] * 2


@pytest.mark.parametrize("status", [404, 405])
def test_a_refused_route_fails_the_record_without_quarantine(
    make_consumer: ConsumerFactory, status: int
) -> None:
    consumer = make_consumer()
    consumer.twin.enqueue(FaultDecision.error(status))
    record = sqs_record(order("ord-1"))

    assert consumer.invoke(record) == [record["messageId"]]
    assert consumer.dlq() == []
    assert consumer.charge_calls() == 1


@pytest.mark.parametrize("status", [408, 409, 423, 425, 307])
def test_not_now_answers_are_retried_like_a_5xx(make_consumer: ConsumerFactory, status: int) -> None:
    consumer = make_consumer()
    consumer.twin.enqueue(FaultDecision.error(status))

    assert consumer.invoke(sqs_record(order("ord-1"))) == []
    assert consumer.charge_calls() == 2 and consumer.twin.charges_by_order() == {"ord-1": 1}
    assert consumer.dlq() == []


def test_a_rotated_key_is_re_read_once_and_the_call_retried(make_consumer: ConsumerFactory) -> None:
    consumer = make_consumer(partner_api_key="rotated-key")
    secret_arn = consumer.module.settings.dependency_api_key_secret_arn
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(
        SecretId=secret_arn, SecretString="rotated-key"
    )  # rotated after this environment cached the old key

    assert consumer.invoke(sqs_record(order("ord-1"))) == []

    assert [c.status for c in consumer.twin.calls("/charges")] == [401, 201]
    assert len(consumer.secret_reads) == 2
    assert consumer.dlq() == []


def test_quarantined_is_logged_only_after_the_dlq_send_succeeded(make_consumer: ConsumerFactory) -> None:
    missing = f"https://sqs.{REGION}.amazonaws.com/123456789012/does-not-exist"
    consumer = make_consumer(POISON_MESSAGE_QUEUE_URL=missing)
    poison = sqs_record("{not json")

    assert consumer.invoke(poison) == [poison["messageId"]]  # retried; the redrive policy gets it

    messages = [r["message"] for r in log_records(consumer.output())]
    assert "poison message quarantined" not in messages
    assert "poison message not quarantined: the record is retried" in messages


def test_an_unavailable_idempotency_table_keeps_the_message_and_is_counted(
    make_consumer: ConsumerFactory,
) -> None:
    consumer = make_consumer(IDEMPOTENCY_TABLE_NAME="no-such-table")
    record = sqs_record(order("ord-1"))

    assert consumer.invoke(record) == [record["messageId"]]

    assert consumer.charge_calls() == 0  # never charged unguarded
    assert consumer.dlq() == []
    out = consumer.output()
    assert metric_points(out, METRIC_IDEMPOTENCY_STORE_ERRORS)[0][METRIC_IDEMPOTENCY_STORE_ERRORS] == [1.0]
    assert IDEMPOTENCY_STORE_UNAVAILABLE_MESSAGE in [r["message"] for r in log_records(out)]


def test_the_idempotency_and_circuit_tables_use_short_timeouts(make_consumer: ConsumerFactory) -> None:
    module = make_consumer().module
    clients = (
        module.consumer.idempotency_store.client,
        module.dependency._store.client,
        module.dependency_tries._dynamodb,
    )
    for client in clients:
        config = client.meta.config
        assert (config.connect_timeout, config.read_timeout) == (1, 1)
        # Every receive writes here: the queue's redelivery is the next retry layer (stacks/retry_budget.py).
        assert (config.retries["mode"], config.retries["total_max_attempts"]) == ("standard", 2)


def test_quarantine_keeps_the_effective_idempotency_key(make_consumer: ConsumerFactory) -> None:
    """Without a producer key the messageId was the key: the DLQ copy carries it, for a redrive."""
    consumer = make_consumer()
    consumer.twin.enqueue(FaultDecision.error(422), FaultDecision.error(422))
    attribute = consumer.module.IDEMPOTENCY_KEY_ATTRIBUTE

    assert consumer.invoke(sqs_record(order("ord-1"), message_id="m-1-no-key")) == []
    assert consumer.invoke(sqs_record(order("ord-2"), message_id="m-2-key", idempotency_key="client-2")) == []

    attributes = [m["MessageAttributes"] for m in consumer.dlq()]
    assert [(a["SourceMessageId"]["StringValue"], a[attribute]["StringValue"]) for a in attributes] == [
        ("m-1-no-key", "m-1-no-key"),
        ("m-2-key", "client-2"),
    ]
    assert [c.idempotency_key for c in consumer.twin.calls("/charges")] == ["m-1-no-key", "client-2"]


def test_quarantine_keeps_the_producer_so_a_redrive_is_charged_under_the_same_scoped_key(
    make_consumer: ConsumerFactory,
) -> None:
    consumer = make_consumer()
    consumer.twin.enqueue(FaultDecision.error(422))
    record = sqs_record(order("ord-1"), message_id="m-1", idempotency_key="k-1", producer=ORDER_PRODUCER)
    assert consumer.invoke(record) == []
    [quarantined] = consumer.dlq()
    attributes = {name: value["StringValue"] for name, value in quarantined["MessageAttributes"].items()}
    assert (attributes["IdempotencyKey"], attributes["ProducerArn"]) == ("k-1", ORDER_PRODUCER)

    redriven = sqs_record(order("ord-1"), idempotency_key="k-1", producer=ORDER_PRODUCER)  # a new message id
    assert consumer.invoke(redriven) == []
    first, second = (c.idempotency_key for c in consumer.twin.calls("/charges"))
    assert first == second  # the partner replays whatever the first call did


def test_a_record_without_time_left_fails_before_calling(make_consumer: ConsumerFactory) -> None:
    consumer = make_consumer()
    record = sqs_record(order("ord-1"))

    # 250 ms left - 100 ms margin - 200 ms connect timeout: no attempt fits, so return instead of timing out.
    assert consumer.invoke(record, remaining_ms=250) == [record["messageId"]]
    assert consumer.twin.total_calls == 0


class _ShrinkingContext(FakeLambdaContext):
    """Time left as the test says: plenty until the partner was called once, then too little for a call."""

    def __init__(self, twin: FaultDependency, after_first_call_ms: int) -> None:
        super().__init__()
        self.twin = twin
        self.after_first_call_ms = after_first_call_ms

    def get_remaining_time_in_millis(self) -> int:
        return 30_000 if self.twin.total_calls == 0 else self.after_first_call_ms


def test_records_without_time_for_a_call_are_not_attempted_and_released_at_once(
    make_consumer: ConsumerFactory,
) -> None:
    consumer = make_consumer()
    queue_url, records = in_flight_orders(consumer, count=4, visibility_s=300)
    # A full attempt needs margin 100 + connect 200 + attempt 2000 = 2300 ms; 2299 ms cannot fit one.
    context = _ShrinkingContext(consumer.twin, after_first_call_ms=2_299)

    failed = consumer.invoke(*records, context=context)

    assert failed == [r["messageId"] for r in records[1:]]
    assert consumer.twin.charges_by_order() == {"ord-1": 1}
    assert consumer.twin.total_calls == 1  # nothing was started without time to finish
    # Back in the queue now, not after the visibility timeout; the charged one was not released.
    visible = consumer.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(json.loads(m["Body"])["orderId"] for m in visible) == ["ord-2", "ord-3", "ord-4"]
    out = consumer.output()
    assert metric_points(out, "RecordsNotAttempted")[0]["RecordsNotAttempted"] == [3.0]
    # Not attempted means untouched: no status, no idempotency record, so nothing to clean up later.
    idempotency = boto3.client("dynamodb", region_name=REGION).scan(TableName="idempotency")["Items"]
    # The charged order's idempotency record and its one try; nothing of the three released.
    tries = [i for i in idempotency if i["id"]["S"].startswith(TRIES_KEY_PREFIX)]
    assert [t["id"]["S"] for t in tries] == [f"{TRIES_KEY_PREFIX}#{records[0]['messageId']}"]
    assert len(idempotency) == 2


def test_a_record_is_not_started_when_one_as_slow_as_the_last_would_overrun(
    make_consumer: ConsumerFactory,
) -> None:
    consumer = make_consumer()
    # 10 s left; each record takes 3.5 s (slow bookkeeping), though a bare attempt needs only 2.3 s.
    context = _TickingContext(consumer.twin, start_ms=10_000, per_call_ms=3_500)
    records = [sqs_record(order(f"ord-{n}")) for n in range(3)]

    failed = consumer.invoke(*records, context=context)

    # After two records 3 s are left: enough for an attempt (2.3 s), not for a record like the last two
    # (3.5 s + the 0.1 s margin): started, it would have run the invocation past its timeout.
    assert consumer.twin.charges_by_order() == {"ord-0": 1, "ord-1": 1}
    assert failed == [records[2]["messageId"]]


def test_the_record_closest_to_the_dlq_is_worked_on_first(make_consumer: ConsumerFactory) -> None:
    consumer = make_consumer()
    fresh = [sqs_record(order(f"ord-{n}")) for n in range(3)]
    veteran = sqs_record(order("ord-veteran"))
    veteran["attributes"]["ApproximateReceiveCount"] = "4"  # one more failed receive and it is dead-lettered

    failed = consumer.invoke(*fresh, veteran, context=_ShrinkingContext(consumer.twin, after_first_call_ms=0))

    assert consumer.twin.charges_by_order() == {"ord-veteran": 1}
    assert sorted(failed) == sorted(r["messageId"] for r in fresh)


class _TickingContext(FakeLambdaContext):
    """Time left shrinks by ``per_call_ms`` with every call the partner received."""

    def __init__(self, twin: FaultDependency, start_ms: int, per_call_ms: int) -> None:
        super().__init__()
        self.twin, self.start_ms, self.per_call_ms = twin, start_ms, per_call_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.start_ms - self.per_call_ms * self.twin.total_calls


def test_when_attempted_records_failed_the_rest_back_off_like_them(make_consumer: ConsumerFactory) -> None:
    consumer = make_consumer()
    consumer.twin.set_profile("outage")
    _, records = in_flight_orders(consumer, count=3, visibility_s=300)

    failed = consumer.invoke(*records, context=_ShrinkingContext(consumer.twin, after_first_call_ms=2_299))

    assert sorted(failed) == sorted(r["messageId"] for r in records)  # one failed, two not attempted
    assert consumer.charge_calls() == 2  # one record's two attempts, nothing more
    # None is handed straight back to the failing partner: the failed one and the two not attempted all
    # back off (a first receive: up to 1 s, in whole seconds), none is released at once.
    backoff = [r for r in log_records(consumer.output()) if r["message"] == BACKOFF_MESSAGE]
    assert [r["visible_in_seconds"] for r in backoff] == [{r["messageId"]: 1 for r in records}]


def test_with_time_for_a_call_every_record_is_attempted(make_consumer: ConsumerFactory) -> None:
    consumer = make_consumer()
    # 2.5 s left, 0.1 s per record: a full attempt (2.3 s) still fits before the third record.
    context = _TickingContext(consumer.twin, start_ms=2_500, per_call_ms=100)

    assert consumer.invoke(*(sqs_record(order(f"ord-{n}")) for n in range(3)), context=context) == []
    assert len(consumer.twin.charges_by_order()) == 3


def test_the_api_key_secret_is_read_once_per_execution_environment(make_consumer: ConsumerFactory) -> None:
    consumer = make_consumer()

    for n in range(5):
        assert consumer.invoke(sqs_record(order(f"ord-{n}"))) == []

    assert len(consumer.secret_reads) == 1
    assert len(consumer.twin.charges_by_order()) == 5  # the partner accepted the key every time


def test_the_function_version_is_logged(make_consumer: ConsumerFactory) -> None:
    consumer = make_consumer()
    consumer.invoke(sqs_record(order()))

    [batch] = [r for r in log_records(consumer.output()) if r["message"] == "batch received"]
    assert batch["function_version"] == "7" and batch["records"] == 1


def test_misconfiguration_fails_at_init_with_the_variable_names(
    make_consumer: ConsumerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_consumer()
    monkeypatch.delenv("IDEMPOTENCY_TABLE_NAME")
    monkeypatch.setenv("DEPENDENCY_MAX_ATTEMPTS", "lots")

    with pytest.raises(ConfigurationError) as caught:
        import_fresh(HANDLER)

    assert "IDEMPOTENCY_TABLE_NAME" in str(caught.value)
    assert "DEPENDENCY_MAX_ATTEMPTS" in str(caught.value)
