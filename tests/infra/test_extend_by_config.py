"""Forks extend the service by config: a new dependency and a new consumer declared only in
cdk.json get every guard the built-in ones have."""

from __future__ import annotations

import json

import pytest

from tests.conftest import cdk_context
from tests.infra.conftest import Synthesized, synthesize


@pytest.fixture(scope="module")
def extended(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    context = cdk_context()
    service = context["service"]
    service["dependencies"]["inventory"] = {
        "critical": True,
        "breaker_failure_threshold": 3,
        "breaker_cache_seconds": 0.25,
    }
    service["consumers"]["restock"] = {
        "dependency": "inventory",
        "handler": "lambdas.order_consumer.handler.handler",
        "timeout_seconds": 10,
        "batch_size": 5,
        "reserved_concurrency": 4,
        "max_concurrency": 3,
        "max_receive_count": 6,
        "max_dependency_tries": 5,  # the order consumer's handler counts its tries
        "idempotency_ttl_seconds": 345600,
    }
    return synthesize(tmp_path_factory, **context)


def _alarmed_metrics(synthesized: Synthesized, reference: dict) -> set[str]:
    needle = json.dumps(reference)
    names = set()
    for alarm in synthesized.of_type("AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        metrics = (
            [props]
            if "MetricName" in props
            else [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]
        )
        names |= {m["MetricName"] for m in metrics if needle in json.dumps(m.get("Dimensions", []))}
    return names


def test_the_new_consumer_gets_queue_dlq_bulkhead_and_alarms(extended: Synthesized) -> None:
    stack = extended.stack
    restock = stack.consumers["restock"]
    queue_id = stack.get_logical_id(restock.queue.node.default_child)
    dlq_id = stack.get_logical_id(restock.work.dead_letter_queue.node.default_child)
    queue = extended.resources[queue_id]["Properties"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
        "maxReceiveCount": 6,
    }
    assert queue["VisibilityTimeout"] == 6 * 10
    function_id = stack.get_logical_id(restock.handler.function.node.default_child)
    function = extended.resources[function_id]["Properties"]
    assert function["ReservedConcurrentExecutions"] == 4
    (mapping,) = [
        m["Properties"]
        for m in extended.of_type("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    ]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 3}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert {"ApproximateAgeOfOldestMessage", "ApproximateNumberOfMessagesVisible"} <= _alarmed_metrics(
        extended, {"Fn::GetAtt": [queue_id, "QueueName"]}
    )
    assert "ApproximateNumberOfMessagesVisible" in _alarmed_metrics(
        extended, {"Fn::GetAtt": [dlq_id, "QueueName"]}
    )
    assert {"Throttles", "Errors", "Duration", "ConcurrentExecutions"} <= _alarmed_metrics(
        extended, {"Ref": function_id}
    )


def test_the_new_dependency_gets_a_breaker_credentials_alarms_and_a_pause(extended: Synthesized) -> None:
    stack = extended.stack
    function_id = stack.get_logical_id(stack.consumers["restock"].handler.function.node.default_child)
    env = extended.resources[function_id]["Properties"]["Environment"]["Variables"]
    assert env["DEPENDENCY_NAME"] == "inventory"
    assert env["BREAKER_FAILURE_THRESHOLD"] == "3"
    assert env["BREAKER_CACHE_SECONDS"] == "0.25"  # to the millisecond, as configured
    orders_id = stack.get_logical_id(stack.consumers["orders"].handler.function.node.default_child)
    assert (
        extended.resources[orders_id]["Properties"]["Environment"]["Variables"]["BREAKER_CACHE_SECONDS"]
        == "5"
    )
    circuits = stack.get_logical_id(stack.circuits.table.node.default_child)
    assert env["CIRCUIT_BREAKER_TABLE_NAME"] == {"Ref": circuits}
    inventory = stack.downstream["inventory"]
    assert inventory.demo is not None  # no base_url: a demo twin with run-time faults is deployed
    upstream = [
        a["Properties"]
        for a in extended.of_type("AWS::CloudWatch::Alarm").values()
        if '"Value": "inventory"' in json.dumps(a["Properties"].get("Metrics", []))
    ]
    metric_names = {
        m["MetricStat"]["Metric"]["MetricName"] for a in upstream for m in a["Metrics"] if "MetricStat" in m
    }
    assert {"UpstreamErrors", "CircuitTransition", "CircuitOpenRejections"} <= metric_names
    # A critical dependency: its consumers are paused by the circuit controller while it is open.
    rules = [
        r["Properties"]
        for r in extended.of_type("AWS::Events::Rule").values()
        if r["Properties"].get("EventPattern", {}).get("detail") == {"dependency": ["inventory"]}
    ]
    assert len(rules) == 1


def test_the_extended_app_still_passes_the_rule_packs(extended: Synthesized) -> None:
    report = json.loads((extended.outdir / "validation-report.json").read_text())
    assert all(p["conclusion"] == "success" and not p["violations"] for p in report["pluginReports"])
