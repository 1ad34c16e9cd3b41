"""ops dlq list / peek / redrive / redrive-to-bus against moto (in process), on a stack shaped like the
service's. StartMessageMoveTask is emulated server-side (tests/unit/ops/sqs_move_tasks.py): moto has none."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto.events.models import EventsBackend

from ops.dlq import Pacer
from tests.unit.helpers import REGION
from tests.unit.ops.conftest import body_count, drain, run
from tests.unit.ops.stack_fixture import BUS, SOURCE, DeployedStack


def string(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def event(event_id: str, detail_type: str = "OrderCancelled", **detail: Any) -> dict[str, Any]:
    return {
        "version": "0",
        "id": event_id,
        "detail-type": detail_type,
        "source": SOURCE,
        "account": "123456789012",
        "time": "2026-11-25T09:30:00Z",
        "region": REGION,
        "resources": [],
        "detail": detail or {"orderId": f"ord-{event_id}", "reason": "customer_request"},
    }


def delivery_failure(
    sqs: Any, dlq: str, body: dict[str, Any], rule_arn: str = "arn:aws:events:rule/x"
) -> str:
    """What EventBridge sends to a target's DLQ when it gives up delivering (docs/events.md)."""
    return str(
        sqs.send_message(
            QueueUrl=dlq,
            MessageBody=json.dumps(body),
            MessageAttributes={
                "ERROR_CODE": string("SQS.AccessDenied"),
                "ERROR_MESSAGE": string("not authorized to send to the queue"),
                "RULE_ARN": string(rule_arn),
                "TARGET_ARN": string("arn:aws:sqs:eu-west-1:123456789012:target"),
                "RETRY_ATTEMPTS": string("20"),
                "EXHAUSTED_RETRY_CONDITION": string("MaximumRetryAttempts"),
            },
        )["MessageId"]
    )


def poison(sqs: Any, dlq: str, body: str = "{not json") -> str:
    """What lambdas/order_consumer/handler.py quarantine() sends (its attribute names)."""
    return str(
        sqs.send_message(
            QueueUrl=dlq,
            MessageBody=body,
            MessageAttributes={
                "QuarantineReason": string("invalid_json"),
                "QuarantineDetail": string("Invalid JSON: expected value at line 1 column 1"),
                "SourceMessageId": string("m-1"),
            },
        )["MessageId"]
    )


# ---------------------------------------------------------------------------------------------- list


def test_list_finds_every_dlq_of_the_stack_with_depth_and_age(stack: DeployedStack, sqs: Any) -> None:
    poison(sqs, stack.orders_dlq)
    poison(sqs, stack.orders_dlq)
    delivery_failure(sqs, stack.undelivered_dlq, event("e-1"))
    boto3.client("cloudwatch", region_name=REGION).put_metric_data(
        Namespace="AWS/SQS",
        MetricData=[
            {
                "MetricName": "ApproximateAgeOfOldestMessage",
                "Dimensions": [{"Name": "QueueName", "Value": stack.orders_dlq.rsplit("/", 1)[1]}],
                "Value": 420.0,
                "Timestamp": datetime.now(UTC),
            }
        ],
    )

    result = run("--stack", stack.name, "--json", "dlq", "list")

    assert result.code == 0, result.err
    rows = {row["label"]: row for row in json.loads(result.out)["dead_letter_queues"]}
    # The work queues and the alerts queue are not DLQs; the circuit rule's DLQ is (EventBridge only).
    assert set(rows) == {
        "orders",
        "events-fulfilment",
        "events-notifications",
        "workflows-circuit-opened-undelivered-queue",
    }
    assert rows["orders"]["visible"] == 2
    assert rows["orders"]["oldest_age_seconds"] == 420.0
    assert rows["orders"]["oldest_age_source"] == "cloudwatch"
    assert rows["orders"]["kinds"] == ["sqs-redrive"]
    assert rows["orders"]["sources"] == [stack.orders_queue.rsplit("/", 1)[1]]
    assert rows["events-fulfilment"]["kinds"] == ["sqs-redrive", "eventbridge-target"]
    assert rows["events-fulfilment"]["rules"] == [stack.output("EventsFulfilmentRuleName")]
    undelivered = rows["workflows-circuit-opened-undelivered-queue"]
    assert undelivered["kinds"] == ["eventbridge-target"] and undelivered["sources"] == []
    assert undelivered["visible"] == 1 and undelivered["oldest_age_seconds"] is None  # no metric: n/a
    assert "3 message(s) waiting" in result.err  # --json: progress on stderr, the document on stdout


def test_list_without_a_stack_scans_queues_and_the_named_buses(stack: DeployedStack, sqs: Any) -> None:
    delivery_failure(sqs, stack.undelivered_dlq, event("e-1"))

    result = run("dlq", "list", "--rules-on-bus", "circuit-events", "--sample-age")

    assert result.code == 0, result.err
    assert "4 dead-letter queue(s) in the account" in result.out
    line = next(li for li in result.out.splitlines() if "UndeliveredQueue" in li or "undelivered" in li)
    assert "visible=1" in line and "(sampled)" in line
    assert body_count(sqs, stack.undelivered_dlq) == 1  # sampling left it there


# ---------------------------------------------------------------------------------------------- peek


def test_peek_shows_each_failure_reason_and_leaves_the_messages(stack: DeployedStack, sqs: Any) -> None:
    delivered = delivery_failure(sqs, stack.fulfilment_dlq, event("e-1"), rule_arn="arn:rule/fulfilment")
    processing = sqs.send_message(QueueUrl=stack.fulfilment_dlq, MessageBody=json.dumps(event("e-2")))[
        "MessageId"
    ]
    quarantined = poison(sqs, stack.orders_dlq)

    fanout = run("--stack", stack.name, "--json", "dlq", "peek", "events-fulfilment", "--wait-seconds", "0")
    orders = run("--stack", stack.name, "--json", "dlq", "peek", stack.orders_dlq, "--wait-seconds", "0")

    assert fanout.code == 0 and orders.code == 0, fanout.err + orders.err
    by_id = {m["message_id"]: m for m in json.loads(fanout.out)["messages"]}
    assert by_id[delivered]["kind"] == "eventbridge-delivery"
    assert by_id[delivered]["reason"] == "SQS.AccessDenied: not authorized to send to the queue"
    assert by_id[delivered]["rule_arn"] == "arn:rule/fulfilment"
    assert by_id[delivered]["attributes"]["RETRY_ATTEMPTS"] == "20"
    assert by_id[processing]["kind"] == "processing"
    assert "maxReceiveCount" in by_id[processing]["reason"]
    assert by_id[processing]["receive_count"] == 1
    [message] = json.loads(orders.out)["messages"]
    assert message["message_id"] == quarantined and message["kind"] == "poison"
    assert message["reason"].startswith("invalid_json: Invalid JSON")
    assert message["body"] == "{not json"
    # Nothing consumed and nothing left hidden: every message is visible again at once.
    counts = sqs.get_queue_attributes(QueueUrl=stack.fulfilment_dlq, AttributeNames=["All"])["Attributes"]
    assert counts["ApproximateNumberOfMessages"] == "2"
    assert counts["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_peek_pages_through_more_than_one_receive(stack: DeployedStack, sqs: Any) -> None:
    for n in range(13):
        poison(sqs, stack.orders_dlq, body=f"bad-{n}")

    result = run("--json", "dlq", "peek", stack.orders_dlq, "--max", "12", "--wait-seconds", "0", "--full")

    assert result.code == 0, result.err
    bodies = {m["body"] for m in json.loads(result.out)["messages"]}
    assert len(bodies) == 12
    assert body_count(sqs, stack.orders_dlq) == 13


# ---------------------------------------------------------------------------------------------- redrive


def test_redrive_moves_the_messages_back_to_the_source_queue(stack: DeployedStack, sqs: Any) -> None:
    ids = [poison(sqs, stack.orders_dlq, body=json.dumps({"n": n})) for n in range(3)]

    result = run("--stack", stack.name, "--json", "dlq", "redrive", "orders", "--rate", "5", "--yes")

    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["status"] == "COMPLETED" and report["moved"] == 3 and report["rate"] == 5
    assert report["task_handle"]
    assert body_count(sqs, stack.orders_dlq) == 0
    back = drain(sqs, stack.orders_queue)
    assert sorted(json.loads(m["Body"])["n"] for m in back) == [0, 1, 2]
    # Moved messages keep their attributes (the quarantine reason travels with them).
    assert {m["MessageAttributes"]["QuarantineReason"]["StringValue"] for m in back} == {"invalid_json"}
    assert len(ids) == 3


def test_redrive_refuses_a_dlq_that_only_eventbridge_writes_to(stack: DeployedStack, sqs: Any) -> None:
    delivery_failure(sqs, stack.undelivered_dlq, event("e-1"))

    result = run(
        "--stack", stack.name, "dlq", "redrive", "workflows-circuit-opened-undelivered-queue", "--yes"
    )

    assert result.code == 2
    assert "redrive-to-bus" in result.err
    assert body_count(sqs, stack.undelivered_dlq) == 1


def test_redrive_of_an_empty_dlq_does_nothing(stack: DeployedStack) -> None:
    result = run("--stack", stack.name, "dlq", "redrive", "orders")

    assert result.code == 0
    assert "nothing to redrive" in result.out


# ---------------------------------------------------------------------------------------------- confirmation


def test_destructive_commands_refuse_without_a_terminal_and_without_yes(
    stack: DeployedStack, sqs: Any
) -> None:
    poison(sqs, stack.orders_dlq)
    delivery_failure(sqs, stack.fulfilment_dlq, event("e-1"))

    redrive = run("--stack", stack.name, "dlq", "redrive", "orders")
    to_bus = run("--stack", stack.name, "dlq", "redrive-to-bus", "events-fulfilment", "--wait-seconds", "0")

    assert redrive.code == 3 and to_bus.code == 3
    assert "pass --yes" in redrive.err and "pass --yes" in to_bus.err
    assert body_count(sqs, stack.orders_dlq) == 1
    assert body_count(sqs, stack.fulfilment_dlq) == 1
    assert body_count(sqs, stack.orders_queue) == 0
    assert body_count(sqs, stack.fulfilment_queue) == 0


def test_an_operator_at_a_terminal_must_type_yes(stack: DeployedStack, sqs: Any) -> None:
    poison(sqs, stack.orders_dlq)

    declined = run("--stack", stack.name, "dlq", "redrive", "orders", answer="n")
    assert declined.code == 3 and "not confirmed" in declined.err
    assert body_count(sqs, stack.orders_dlq) == 1

    accepted = run("--stack", stack.name, "dlq", "redrive", "orders", answer="yes")
    assert accepted.code == 0, accepted.err
    assert "Type 'yes'" in accepted.err
    assert body_count(sqs, stack.orders_dlq) == 0 and body_count(sqs, stack.orders_queue) == 1


# ---------------------------------------------------------------------------------------------- to the bus


def test_redrive_to_bus_re_puts_the_events_and_deletes_what_was_put(stack: DeployedStack, sqs: Any) -> None:
    cancelled = event("e-1")  # OrderCancelled: routed to fulfilment AND notifications
    paid = event(
        "e-2",
        "PaymentReceived",
        paymentId="pay-1",
        orderId="ord-2",
        amountCents=100,
        currency="EUR",
        method="card",
        receivedAt="2026-11-25T09:30:00Z",
    )
    delivery_failure(sqs, stack.fulfilment_dlq, cancelled)
    delivery_failure(sqs, stack.fulfilment_dlq, paid)
    not_an_event = poison(sqs, stack.fulfilment_dlq, body="{not json")

    result = run(
        "--stack",
        stack.name,
        "--json",
        "dlq",
        "redrive-to-bus",
        "events-fulfilment",
        "--yes",
        "--wait-seconds",
        "0",
    )

    assert result.code == 1, result.err  # one message could not be re-put: not a full success
    report = json.loads(result.out)
    assert report["put"] == 2 and report["left_in_dlq"] == 1 and report["bus"] == BUS
    [left] = [o for o in report["outcomes"] if o["status"] != "put"]
    assert left["message_id"] == not_an_event and left["status"] == "skipped"
    # Only the message that was not put is left, visible again for inspection.
    [remaining] = drain(sqs, stack.fulfilment_dlq)
    assert remaining["MessageId"] == not_an_event
    # The bus routed the re-put events through the rules: both reach fulfilment ...
    delivered = [json.loads(m["Body"]) for m in drain(sqs, stack.fulfilment_queue)]
    assert sorted(e["detail-type"] for e in delivered) == ["OrderCancelled", "PaymentReceived"]
    assert {json.dumps(e["detail"], sort_keys=True) for e in delivered} == {
        json.dumps(cancelled["detail"], sort_keys=True),
        json.dumps(paid["detail"], sort_keys=True),
    }
    dlq_arn = sqs.get_queue_attributes(QueueUrl=stack.fulfilment_dlq, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    assert all(dlq_arn in e["resources"] for e in delivered)  # marked as redriven from this DLQ
    assert {e["id"] for e in delivered}.isdisjoint({"e-1", "e-2"})  # PutEvents gives new event ids
    # ... and every other matching rule gets them too (the documented caveat): notifications wants
    # OrderCancelled, not PaymentReceived.
    assert [json.loads(m["Body"])["detail-type"] for m in drain(sqs, stack.notifications_queue)] == [
        "OrderCancelled"
    ]


def test_redrive_to_bus_keeps_what_the_bus_refused(
    stack: DeployedStack, sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok, refused = event("e-ok"), event("e-refused")
    delivery_failure(sqs, stack.fulfilment_dlq, ok)
    refused_id = delivery_failure(sqs, stack.fulfilment_dlq, refused)

    def partly_failing(backend: EventsBackend, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # The bus refuses one entry: PutEvents answers 200 with FailedEntryCount 1 and an ErrorCode.
        results: list[dict[str, Any]] = []
        for entry in events:
            if "ord-e-refused" in entry.get("Detail", ""):
                results.append({"ErrorCode": "InternalFailure", "ErrorMessage": "try again"})
            else:
                results += real_put_events(backend, [entry])
        return results

    real_put_events = EventsBackend.put_events
    monkeypatch.setattr(EventsBackend, "put_events", partly_failing)

    result = run(
        "--stack",
        stack.name,
        "--json",
        "dlq",
        "redrive-to-bus",
        "events-fulfilment",
        "--yes",
        "--wait-seconds",
        "0",
    )

    assert result.code == 1
    report = json.loads(result.out)
    [failed] = [o for o in report["outcomes"] if o["status"] == "failed"]
    assert failed["message_id"] == refused_id and failed["detail"] == "InternalFailure: try again"
    assert [m["MessageId"] for m in drain(sqs, stack.fulfilment_dlq)] == [refused_id]


def test_an_event_already_redriven_from_the_dlq_is_not_re_put_again(stack: DeployedStack, sqs: Any) -> None:
    delivery_failure(sqs, stack.fulfilment_dlq, event("e-1"))
    assert (
        run(
            "--stack",
            stack.name,
            "dlq",
            "redrive-to-bus",
            "events-fulfilment",
            "--yes",
            "--wait-seconds",
            "0",
        ).code
        == 0
    )
    # The redriven event fails delivery again and lands in the same DLQ: a loop unless it is bounded.
    [again] = [json.loads(m["Body"]) for m in drain(sqs, stack.fulfilment_queue)]
    delivery_failure(sqs, stack.fulfilment_dlq, again)

    refused = run(
        "--stack",
        stack.name,
        "--json",
        "dlq",
        "redrive-to-bus",
        "events-fulfilment",
        "--yes",
        "--wait-seconds",
        "0",
    )
    assert refused.code == 1
    assert "already redriven" in json.loads(refused.out)["outcomes"][0]["detail"]
    assert body_count(sqs, stack.fulfilment_dlq) == 1

    allowed = run(
        "--stack",
        stack.name,
        "dlq",
        "redrive-to-bus",
        "events-fulfilment",
        "--yes",
        "--wait-seconds",
        "0",
        "--allow-repeat",
    )
    assert allowed.code == 0, allowed.err
    [third] = [json.loads(m["Body"]) for m in drain(sqs, stack.fulfilment_queue)]
    assert third["resources"].count(again["resources"][0]) == 1  # marked once, not once per redrive


def test_the_pacer_spaces_batches_to_the_rate() -> None:
    clock = {"now": 0.0}
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock["now"] += seconds

    pacer = Pacer(rate=5.0, clock=lambda: clock["now"], sleep=sleep)
    for _ in range(3):
        pacer.wait_for(10)  # 10 events at 5/s: 2 s each

    assert sleeps == [2.0, 2.0]
    assert clock["now"] == 4.0
