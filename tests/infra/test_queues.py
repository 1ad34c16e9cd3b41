"""Template-wide rules for every queue, so a queue added later cannot skip them."""

from __future__ import annotations

from typing import Any

from tests.infra.conftest import Synthesized


def _queue_policies(dev: Synthesized) -> dict[str, list[dict[str, Any]]]:
    by_queue: dict[str, list[dict[str, Any]]] = {}
    for policy in dev.of_type("AWS::SQS::QueuePolicy").values():
        for queue in policy["Properties"]["Queues"]:
            by_queue.setdefault(queue["Ref"], []).extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return by_queue


def test_every_queue_has_a_dlq_or_is_one(dev: Synthesized) -> None:
    queues = dev.of_type("AWS::SQS::Queue")
    dlqs = dev.dead_letter_queue_ids()
    assert dlqs, "no queue has a dead-letter queue"
    for logical_id, queue in queues.items():
        assert logical_id in dlqs or "RedrivePolicy" in queue["Properties"], f"{logical_id} has no DLQ"


def test_every_queue_is_encrypted_and_ssl_only(dev: Synthesized) -> None:
    policies = _queue_policies(dev)
    for logical_id, queue in dev.of_type("AWS::SQS::Queue").items():
        props = queue["Properties"]
        assert props.get("SqsManagedSseEnabled") or props.get("KmsMasterKeyId"), f"{logical_id} unencrypted"
        denies_plain_http = [
            s
            for s in policies.get(logical_id, [])
            if s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert denies_plain_http, f"{logical_id} does not enforce SSL"


def test_dead_letter_queues_keep_messages_longer_than_their_sources(dev: Synthesized) -> None:
    queues = dev.of_type("AWS::SQS::Queue")
    for logical_id, queue in queues.items():
        redrive = queue["Properties"].get("RedrivePolicy")
        if not redrive:
            continue
        dlq = queues[redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]]["Properties"]
        assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
        assert queue["Properties"]["MessageRetentionPeriod"] < dlq["MessageRetentionPeriod"], logical_id
        assert redrive["maxReceiveCount"] >= 5


def test_visibility_timeout_is_derived_from_the_consumer(dev: Synthesized) -> None:
    for consumer in dev.stack.consumers.values():
        queue = dev.resources[dev.stack.get_logical_id(consumer.queue.node.default_child)]["Properties"]
        settings = consumer.settings
        if consumer.owns_queue:
            assert queue["VisibilityTimeout"] == settings.visibility_timeout_seconds
            assert queue["RedrivePolicy"]["maxReceiveCount"] == settings.max_receive_count
        else:  # a fan-out subscription's queue, shared settings: still long enough for this consumer
            assert queue["VisibilityTimeout"] >= settings.visibility_timeout_seconds
