"""The moto patch behind the local cloud's archive replay: the window and the named rules only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from localcloud.moto_patches.eventbridge_replay import install_eventbridge_replay_window

REGION = "eu-west-1"
BUS = "bus"
NOW = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any]]:
    install_eventbridge_replay_window()
    with mock_aws():
        yield boto3.client("events", region_name=REGION), boto3.client("sqs", region_name=REGION)


def _rule_to_queue(events: Any, sqs: Any, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule_arn = events.put_rule(Name=name, EventBusName=BUS, EventPattern=json.dumps({"source": ["shop"]}))
    events.put_targets(Rule=name, EventBusName=BUS, Targets=[{"Id": "q", "Arn": arn}])
    return url, rule_arn["RuleArn"]


def _drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    bodies = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def test_a_replay_sends_the_windows_events_to_the_named_rules_only_and_is_not_archived_again(
    aws: tuple[Any, Any],
) -> None:
    events, sqs = aws
    bus_arn = events.create_event_bus(Name=BUS)["EventBusArn"]
    archive_arn = events.create_archive(ArchiveName="archive", EventSourceArn=bus_arn)["ArchiveArn"]
    named_url, named_arn = _rule_to_queue(events, sqs, "named")
    other_url, _ = _rule_to_queue(events, sqs, "other")
    for minutes, order in ((-30, "before"), (-5, "inside-1"), (-1, "inside-2"), (+30, "after")):
        entry = {
            "EventBusName": BUS,
            "Source": "shop",
            "DetailType": "OrderCancelled",
            "Detail": json.dumps({"orderId": order}),
            "Time": NOW + timedelta(minutes=minutes),
        }
        assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0
    _drain(sqs, named_url), _drain(sqs, other_url)
    archived = events.describe_archive(ArchiveName="archive")["EventCount"]

    events.start_replay(
        ReplayName="r1",
        EventSourceArn=archive_arn,
        EventStartTime=NOW - timedelta(minutes=10),
        EventEndTime=NOW,
        Destination={"Arn": bus_arn, "FilterArns": [named_arn]},
    )

    assert events.describe_replay(ReplayName="r1")["State"] == "COMPLETED"
    replayed = _drain(sqs, named_url)
    assert sorted(e["detail"]["orderId"] for e in replayed) == ["inside-1", "inside-2"]
    assert {e["replay-name"] for e in replayed} == {"r1"}
    assert _drain(sqs, other_url) == []
    assert events.describe_archive(ArchiveName="archive")["EventCount"] == archived == 4
