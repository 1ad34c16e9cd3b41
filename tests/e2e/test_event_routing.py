"""Routing on an emulated bus (moto, in process): each event type reaches exactly its subscribers.

The bus, archive, rules and queues are built from the synthesized template, with the rules'
EventPattern JSON copied verbatim, so these tests cannot drift from what is deployed. The
``POST /events`` front door is emulated the way the gateway behaves: the request body is
validated against schemas/event.schema.json (a failure is the gateway's 400 and nothing is put
on the bus), then PutEvents with the source the gateway stamps.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import jsonschema
import pytest
from moto import mock_aws

from lambdas.contracts.events import DETAIL_TYPES
from lambdas.shared.events import BY_DETAIL_TYPE, parse_event
from schemas import EVENT, load_schema
from tests.infra.conftest import Synthesized, synthesize

pytestmark = pytest.mark.e2e

REGION = "eu-west-1"
BUS = "service-bus"
PROBE = "probe-everything-on-the-bus"

SAMPLES: dict[str, dict[str, Any]] = {
    "OrderCancelled": {
        "orderId": "ord-1",
        "customerId": "cust-1",
        "reason": "out_of_stock",
        "cancelledAt": "2026-11-25T09:30:00Z",
    },
    "PaymentReceived": {
        "paymentId": "pay-1",
        "orderId": "ord-1",
        "amountCents": 1250,
        "currency": "EUR",
        "method": "wallet",
        "receivedAt": "2026-11-25T09:31:00Z",
    },
    "CustomerUpdated": {"customerId": "cust-1", "displayName": "Ada"},
}


@dataclass
class EmulatedBus:
    events: Any
    sqs: Any
    source: str
    # subscription name -> (queue url, dlq url), from the template's targets
    subscriptions: dict[str, tuple[str, str]] = field(default_factory=dict)
    probe_url: str = ""

    def publish(self, body: Any) -> int:
        """POST /events as the gateway handles it: 400 on a schema failure, else 202."""
        if not jsonschema.Draft4Validator(load_schema(EVENT)).is_valid(body):
            return 400
        result = self.events.put_events(
            Entries=[
                {
                    "EventBusName": BUS,
                    "Source": self.source,
                    "DetailType": body["detailType"],
                    "Detail": json.dumps(body["detail"]),
                }
            ]
        )
        return 502 if result["FailedEntryCount"] else 202

    def put_directly(self, source: str, detail_type: str, detail: dict[str, Any]) -> None:
        """An event that reaches the bus without the API (another producer, the service itself)."""
        entry = {
            "EventBusName": BUS,
            "Source": source,
            "DetailType": detail_type,
            "Detail": json.dumps(detail),
        }
        assert self.events.put_events(Entries=[entry])["FailedEntryCount"] == 0

    def drain(self, url: str) -> list[dict[str, Any]]:
        bodies = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return bodies
            for message in messages:
                bodies.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def deliveries(self) -> dict[str, list[dict[str, Any]]]:
        """Drain every subscription queue; assert no DLQ received anything."""
        received = {}
        for name, (queue_url, dlq_url) in self.subscriptions.items():
            received[name] = self.drain(queue_url)
            assert self.drain(dlq_url) == [], f"{name}: an event went to the DLQ"
        return received


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(tmp_path_factory, stage="dev")


@pytest.fixture
def bus(dev: Synthesized) -> Iterator[EmulatedBus]:
    with mock_aws():
        events = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        emulated = EmulatedBus(events=events, sqs=sqs, source=dev.stack.config.event_source)
        bus_arn = events.create_event_bus(Name=BUS)["EventBusArn"]
        (archive,) = dev.of_type("AWS::Events::Archive").values()
        events.create_archive(
            ArchiveName="archive",
            EventSourceArn=bus_arn,
            EventPattern=json.dumps(archive["Properties"]["EventPattern"]),
        )

        def queue(logical_id: str) -> tuple[str, str]:
            url = sqs.create_queue(QueueName=logical_id)["QueueUrl"]
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
            return url, attributes["QueueArn"]

        subscription_of_rule = {
            dev.stack.get_logical_id(s.rule.node.default_child): name
            for name, s in dev.stack.fanout.subscriptions.items()
        }
        for rule_id, rule in dev.of_type("AWS::Events::Rule").items():
            if rule_id not in subscription_of_rule:
                continue  # control-plane rules (circuit controller) live on other buses
            props = rule["Properties"]
            # The deployed pattern, verbatim.
            events.put_rule(Name=rule_id, EventBusName=BUS, EventPattern=json.dumps(props["EventPattern"]))
            targets = []
            for target in props["Targets"]:
                queue_url, queue_arn = queue(target["Arn"]["Fn::GetAtt"][0])
                dlq_url, dlq_arn = queue(target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0])
                targets.append(
                    {
                        "Id": target["Id"],
                        "Arn": queue_arn,
                        "DeadLetterConfig": {"Arn": dlq_arn},
                        "RetryPolicy": target["RetryPolicy"],
                    }
                )
                emulated.subscriptions[subscription_of_rule[rule_id]] = (queue_url, dlq_url)
            events.put_targets(Rule=rule_id, EventBusName=BUS, Targets=targets)
        # A test-only rule that sees everything on the bus: proves what never got there.
        account = boto3.client("sts", region_name=REGION).get_caller_identity()["Account"]
        events.put_rule(Name=PROBE, EventBusName=BUS, EventPattern=json.dumps({"account": [account]}))
        emulated.probe_url, probe_arn = queue(PROBE)
        events.put_targets(Rule=PROBE, EventBusName=BUS, Targets=[{"Id": "probe", "Arn": probe_arn}])
        yield emulated


def _expected_subscribers(dev: Synthesized, detail_type: str) -> set[str]:
    # Independent of EventFanout: straight from config.
    return {name for name, types in dev.stack.config.events.subscriptions.items() if detail_type in types}


def test_every_contract_has_a_sample_and_a_subscriber(dev: Synthesized) -> None:
    assert set(SAMPLES) == set(DETAIL_TYPES)
    for detail_type in DETAIL_TYPES:
        assert _expected_subscribers(dev, detail_type), f"nobody subscribes to {detail_type}"


@pytest.mark.parametrize("detail_type", DETAIL_TYPES)
def test_each_event_type_reaches_exactly_its_subscribers(
    bus: EmulatedBus, dev: Synthesized, detail_type: str
) -> None:
    assert bus.publish({"detailType": detail_type, "detail": SAMPLES[detail_type]}) == 202
    received = bus.deliveries()
    reached = {name for name, bodies in received.items() if bodies}
    assert reached == _expected_subscribers(dev, detail_type)
    for name in reached:
        (body,) = received[name]
        # What the subscriber reads is the contract the producer was validated against.
        event = parse_event(json.dumps(body), source=dev.stack.config.event_source)
        assert event.contract is BY_DETAIL_TYPE[detail_type]
        assert event.detail.model_dump(exclude_none=True) == SAMPLES[detail_type]
    assert len(bus.drain(bus.probe_url)) == 1


def test_a_burst_of_mixed_events_fans_out_without_loss_or_crosstalk(
    bus: EmulatedBus, dev: Synthesized
) -> None:
    published = {t: 0 for t in DETAIL_TYPES}
    for index in range(12):
        detail_type = DETAIL_TYPES[index % len(DETAIL_TYPES)]
        detail = dict(SAMPLES[detail_type], customerId=f"cust-{index}")
        if detail_type == "PaymentReceived":
            detail = dict(SAMPLES[detail_type], paymentId=f"pay-{index}")
        assert bus.publish({"detailType": detail_type, "detail": detail}) == 202
        published[detail_type] += 1
    for name, bodies in bus.deliveries().items():
        wanted = dev.stack.config.events.subscriptions[name]
        assert sorted(b["detail-type"] for b in bodies) == sorted(
            t for t in DETAIL_TYPES for _ in range(published[t]) if t in wanted
        ), name


@pytest.mark.parametrize(
    ("source_suffix", "detail_type"),
    [
        # An event type no contract defines, even from the ingestion source.
        ("ingestion", "OrderShipped"),
        # A contract's detail-type published by the service itself under another source (what
        # a subscriber would emit): rules match the ingestion source only, so it cannot loop.
        ("fulfilment", "OrderCancelled"),
        ("ingestion.replayed", "PaymentReceived"),
    ],
)
def test_an_unmatched_event_reaches_no_subscriber(
    bus: EmulatedBus, dev: Synthesized, source_suffix: str, detail_type: str
) -> None:
    source = f"{dev.stack.config.service_name}.{source_suffix}"
    bus.put_directly(source, detail_type, SAMPLES.get(detail_type, {"orderId": "ord-1"}))
    assert all(bodies == [] for bodies in bus.deliveries().values())
    assert len(bus.drain(bus.probe_url)) == 1, "the event did reach the bus"


@pytest.mark.parametrize(
    "body",
    [
        {"detailType": "OrderCancelled", "detail": dict(SAMPLES["OrderCancelled"], reason="changed_mind")},
        {"detailType": "PaymentReceived", "detail": dict(SAMPLES["PaymentReceived"], amountCents="1250")},
        {"detailType": "PaymentReceived", "detail": SAMPLES["OrderCancelled"]},
        {"detailType": "CustomerUpdated", "detail": dict(SAMPLES["CustomerUpdated"], email=None)},
        {"detailType": "OrderShipped", "detail": {"orderId": "ord-1"}},
        {"detailType": "OrderCancelled", "detail": SAMPLES["OrderCancelled"], "source": "aws.partner"},
        {"detail": SAMPLES["OrderCancelled"]},
    ],
    ids=[
        "bad-enum",
        "string-amount",
        "crossed-detail",
        "null-field",
        "unknown-type",
        "forged-source",
        "no-type",
    ],
)
def test_a_malformed_event_gets_400_and_never_reaches_the_bus(bus: EmulatedBus, body: dict[str, Any]) -> None:
    assert bus.publish(body) == 400
    assert all(bodies == [] for bodies in bus.deliveries().values())
    assert bus.drain(bus.probe_url) == []
    assert bus.events.describe_archive(ArchiveName="archive")["EventCount"] == 0


def test_every_accepted_event_is_archived_for_replay(bus: EmulatedBus) -> None:
    for detail_type in DETAIL_TYPES:
        assert bus.publish({"detailType": detail_type, "detail": SAMPLES[detail_type]}) == 202
    bus.put_directly("someone.else", "OrderCancelled", SAMPLES["OrderCancelled"])
    assert bus.events.describe_archive(ArchiveName="archive")["EventCount"] == len(DETAIL_TYPES)
