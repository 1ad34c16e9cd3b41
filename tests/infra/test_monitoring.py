"""Template-wide alarm coverage: a resource added later without its alarms fails here."""

from __future__ import annotations

import json
import re
from typing import Any

from aws_cdk import aws_logs as logs

from lambdas.contracts import log_fields as lf
from lambdas.contracts.metrics import (
    CALL_OUTCOME_CONFIGURATION,
    CALL_OUTCOMES,
    CALL_OUTCOMES_FAILED,
    DIMENSION_OUTCOME,
    METRIC_CIRCUIT_PROBES_FAILED,
    METRIC_CIRCUIT_REJECTIONS,
    METRIC_CIRCUIT_TRANSITION,
    METRIC_FALLBACK_USED,
    METRIC_IDEMPOTENCY_STORE_ERRORS,
    METRIC_LOGICAL_CALLS,
    METRIC_NOTIFICATIONS_DEFERRED,
    METRIC_UPSTREAM_ERRORS,
)
from lambdas.notifications_consumer import notifications
from stacks.monitoring import insights_queries
from tests.infra.conftest import Synthesized


def _alarm_metrics(alarm: dict[str, Any]) -> list[tuple[str, str]]:
    """(metric name, JSON of its dimensions) for a plain or metric-math alarm."""
    props = alarm["Properties"]
    if "MetricName" in props:
        return [(props["MetricName"], json.dumps(props.get("Dimensions", [])))]
    return [
        (m["MetricStat"]["Metric"]["MetricName"], json.dumps(m["MetricStat"]["Metric"].get("Dimensions", [])))
        for m in props.get("Metrics", [])
        if "MetricStat" in m
    ]


def _alarms_on(dev: Synthesized, reference: dict[str, Any]) -> set[str]:
    """Metric names of every alarm whose dimensions point at ``reference``."""
    needle = json.dumps(reference)
    return {
        name
        for alarm in dev.of_type("AWS::CloudWatch::Alarm").values()
        for name, dimensions in _alarm_metrics(alarm)
        if needle in dimensions
    }


def test_every_dlq_has_a_depth_alarm_on_visible_messages(dev: Synthesized, prod: Synthesized) -> None:
    for synthesized in (dev, prod):
        dlqs = synthesized.dead_letter_queue_ids()
        assert dlqs
        for dlq in dlqs:
            reference = {"Fn::GetAtt": [dlq, "QueueName"]}
            assert "ApproximateNumberOfMessagesVisible" in _alarms_on(synthesized, reference), dlq
        depth_alarms = [
            a["Properties"]
            for a in synthesized.of_type("AWS::CloudWatch::Alarm").values()
            if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
        ]
        assert all(
            a["Threshold"] == 0 and a["ComparisonOperator"] == "GreaterThanThreshold" for a in depth_alarms
        )


def test_every_work_queue_has_age_and_growth_alarms(dev: Synthesized) -> None:
    dlqs = dev.dead_letter_queue_ids()
    work_queues = [k for k in dev.of_type("AWS::SQS::Queue") if k not in dlqs]
    assert work_queues
    for queue in work_queues:
        names = _alarms_on(dev, {"Fn::GetAtt": [queue, "QueueName"]})
        assert "ApproximateAgeOfOldestMessage" in names, queue
        assert "ApproximateNumberOfMessagesVisible" in names, queue


def test_every_function_has_throttle_error_duration_and_concurrency_alarms(dev: Synthesized) -> None:
    functions = dev.of_type("AWS::Lambda::Function")
    assert functions
    for logical_id, function in functions.items():
        names = _alarms_on(dev, {"Ref": logical_id})
        assert {"Throttles", "Errors", "Invocations", "Duration"} <= names, logical_id
        assert "ReservedConcurrentExecutions" in function["Properties"], f"{logical_id} has no bulkhead"
        assert "ConcurrentExecutions" in names, logical_id


def test_every_state_machine_has_a_failure_alarm(dev: Synthesized) -> None:
    for logical_id in dev.of_type("AWS::StepFunctions::StateMachine"):
        names = _alarms_on(dev, {"Ref": logical_id})
        assert {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionThrottled", "ExecutionsAborted"} <= names


def test_api_and_dependencies_and_account_headroom_are_alarmed(dev: Synthesized) -> None:
    metric_names = {
        name for a in dev.of_type("AWS::CloudWatch::Alarm").values() for name, _ in _alarm_metrics(a)
    }
    assert {"5XXError", "4XXError", "Count", "Latency"} <= metric_names
    assert {"UpstreamErrors", "CircuitTransition", "CircuitOpenRejections"} <= metric_names
    assert "UnreservedConcurrentExecutions" in metric_names
    upstream = [
        a["Properties"]
        for a in dev.of_type("AWS::CloudWatch::Alarm").values()
        if any(name == "UpstreamErrors" for name, _ in _alarm_metrics(a))
    ]
    for dependency in dev.stack.config.dependencies:
        (alarm,) = [a for a in upstream if f'"Value": "{dependency}"' in json.dumps(a["Metrics"])]
        classes = {
            d["Value"]
            for m in alarm["Metrics"]
            if "MetricStat" in m
            for d in m["MetricStat"]["Metric"]["Dimensions"]
            if d["Name"] == lf.STATUS_CLASS
        }
        assert classes == {"5xx", "429", "timeout", "connection"}


def test_a_circuit_alarm_stays_in_alarm_while_the_controller_finds_the_dependency_down(
    dev: Synthesized,
) -> None:
    """A paused consumer makes no calls, so nothing is rejected: the controller's failed probes (one per
    recovery window) are what keep the alarm up, and it clears only after enough periods to hold one."""
    for name, dependency in dev.stack.config.dependencies.items():
        (alarm,) = [
            a["Properties"]
            for a in dev.of_type("AWS::CloudWatch::Alarm").values()
            if any(n == METRIC_CIRCUIT_PROBES_FAILED for n, _ in _alarm_metrics(a))
            and f'"Value": "{name}"' in json.dumps(a["Properties"]["Metrics"])
        ]
        read = {n for n, _ in _alarm_metrics({"Properties": alarm})}
        assert read == {METRIC_CIRCUIT_TRANSITION, METRIC_CIRCUIT_REJECTIONS, METRIC_CIRCUIT_PROBES_FAILED}
        assert alarm["DatapointsToAlarm"] == 1 and alarm["Threshold"] == 0
        # Every window of EvaluationPeriods minutes holds a probe while the circuit is open, and the
        # alarm clears within two periods of the recovery window once probes stop failing.
        assert alarm["EvaluationPeriods"] * 60 > dependency.breaker_recovery_seconds
        assert alarm["EvaluationPeriods"] * 60 < dependency.breaker_recovery_seconds + 120


def test_the_api_5xx_harm_alarm_reads_only_the_routes_that_store(dev: Synthesized) -> None:
    """The status read's deliberate 503s while shedding must neither page nor stop a fault experiment."""
    alarms = list(dev.of_type("AWS::CloudWatch::Alarm").values())
    (server,) = [a["Properties"] for a in alarms if any(name == "5XXError" for name, _ in _alarm_metrics(a))]
    routes = {
        (dims["Method"], dims["Resource"])
        for m in server["Metrics"]
        if "MetricStat" in m
        for dims in [{d["Name"]: d["Value"] for d in m["MetricStat"]["Metric"]["Dimensions"]}]
    }
    assert routes == {("POST", "/orders"), ("POST", "/events")}
    stages = {
        d["Value"] for m in server["Metrics"] if "MetricStat" in m for d in m["MetricStat"]["Metric"]["Dimensions"]
        if d["Name"] == "Stage"
    }  # fmt: skip
    assert stages == {dev.stack.config.stage}
    (expression,) = [m["Expression"] for m in server["Metrics"] if "Expression" in m]
    assert expression.count("FILL(") == 2  # either route alone fires it
    # The 4XX rate is judged only from enough requests: three 404s of status reads are not a trend.
    (rate,) = [a["Properties"] for a in alarms if any(name == "4XXError" for name, _ in _alarm_metrics(a))]
    (rate_expression,) = [m["Expression"] for m in rate["Metrics"] if "Expression" in m]
    minimum = dev.stack.config.alarms.api_4xx_rate_min_requests
    assert rate_expression.startswith(f"IF(requests >= {minimum},")


def test_every_alarm_notifies_the_encrypted_ssl_only_topic(dev: Synthesized) -> None:
    (topic_id, topic), *_ = dev.of_type("AWS::SNS::Topic").items()
    assert "KmsMasterKeyId" in topic["Properties"]
    statements = [
        s
        for p in dev.of_type("AWS::SNS::TopicPolicy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert any(
        s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )
    alarms = {**dev.of_type("AWS::CloudWatch::Alarm"), **dev.of_type("AWS::CloudWatch::CompositeAlarm")}
    assert len(alarms) > 10
    for logical_id, alarm in alarms.items():
        assert {"Ref": topic_id} in alarm["Properties"].get("AlarmActions", []), f"{logical_id} has no action"
        assert alarm["Properties"].get("AlarmDescription"), logical_id


def test_pipeline_degraded_composite_covers_circuit_age_dlq_and_api(dev: Synthesized) -> None:
    (composite,) = dev.of_type("AWS::CloudWatch::CompositeAlarm").values()
    rule = json.dumps(composite["Properties"]["AlarmRule"])
    watched = set(re.findall(r'"(Monitoring[A-Za-z0-9]+)"', rule))
    kinds = {"QueueAge", "DlqDepth", "CircuitOpen", "5xx"}
    assert all(any(kind in logical_id for logical_id in watched) for kind in kinds), watched


def test_email_subscription_only_when_configured(dev: Synthesized, prod: Synthesized) -> None:
    assert dev.of_type("AWS::SNS::Subscription") == {}
    (subscription,) = prod.of_type("AWS::SNS::Subscription").values()
    assert subscription["Properties"] == {
        **subscription["Properties"],
        "Protocol": "email",
        "Endpoint": "oncall@example.com",
    }


def test_dashboard_reads_left_to_right_like_the_pipeline(dev: Synthesized) -> None:
    (dashboard,) = dev.of_type("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    titles = [
        "1. Accepted at the API",
        "2. Queue depth and age",
        "3. Consumers",
        "4. Dependencies",
        "5. Dead-letter queues",
    ]
    positions = [body.index(title) for title in titles]
    assert positions == sorted(positions)
    assert "SEARCH(" in body and "UpstreamErrors" in body


def _fields_in(query: str) -> set[str]:
    # Drop string literals, regexes, @system fields and the names results are given ("as x").
    query = re.sub(r"'[^']*'|/[^/]*/|@\w+|\bas \w+|\bsort \w+", "", query)
    words = set(re.findall(r"\b([a-z_]+)\b", query))
    syntax = {
        "filter",
        "stats",
        "and",
        "or",
        "by",
        "count",
        "count_distinct",
        "max",
        "bin",
        "desc",
        "like",
        "m",
    }
    return words - syntax - {"message"}


def test_saved_queries_only_use_fields_the_handlers_log(dev: Synthesized) -> None:
    definitions = dev.of_type("AWS::Logs::QueryDefinition")
    assert len(definitions) == len(insights_queries()) == 4
    powertools_fields = {"function_request_id"}
    for _, _, parts in insights_queries():
        query = logs.QueryString(**parts).to_string()  # type: ignore[arg-type]
        unknown = _fields_in(query) - set(lf.ALL_FIELDS) - powertools_fields
        assert not unknown, f"{query!r} uses fields no handler logs: {unknown}"
    for definition in definitions.values():
        assert definition["Properties"]["LogGroupNames"]


def test_every_rule_alarms_on_failed_and_lost_deliveries(dev: Synthesized) -> None:
    rules = dev.of_type("AWS::Events::Rule")
    assert rules
    for logical_id in rules:
        names = _alarms_on(dev, {"Ref": logical_id})
        assert {"InvocationsFailedToBeSentToDlq", "FailedInvocations"} <= names, logical_id


def test_every_table_has_throttle_and_system_error_alarms(dev: Synthesized) -> None:
    tables = {**dev.of_type("AWS::DynamoDB::Table"), **dev.of_type("AWS::DynamoDB::GlobalTable")}
    assert len(tables) >= 3  # circuits, order status, one idempotency table per consumer
    for logical_id in tables:
        names = _alarms_on(dev, {"Ref": logical_id})
        assert {"ReadThrottleEvents", "WriteThrottleEvents", "SystemErrors"} <= names, logical_id
    for alarm in dev.of_type("AWS::CloudWatch::Alarm").values():
        metrics = alarm["Properties"].get("Metrics", [])
        operations = {
            d["Value"]
            for m in metrics
            if "MetricStat" in m and m["MetricStat"]["Metric"]["MetricName"] == "SystemErrors"
            for d in m["MetricStat"]["Metric"]["Dimensions"]
            if d["Name"] == "Operation"
        }
        if operations:
            # What the breaker, idempotency and status code call; FILL: unused operations publish nothing.
            assert {"GetItem", "PutItem", "UpdateItem", "DeleteItem"} <= operations
            (expression,) = [m["Expression"] for m in metrics if "Expression" in m]
            assert expression.count("FILL(") == len(operations) <= 10  # alarm metric math limit


def test_fallback_alarm_watches_what_the_dependency_client_emits(dev: Synthesized) -> None:
    """Namespace and ``service`` come from the callers' Powertools environment; ``dependency`` from theirs."""
    alarms = [
        a["Properties"]
        for a in dev.of_type("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == METRIC_FALLBACK_USED
    ]
    falling_back = sorted(name for name, s in dev.stack.config.dependencies.items() if not s.critical)
    assert falling_back
    by_dependency = {d["Value"]: a for a in alarms for d in a["Dimensions"] if d["Name"] == lf.DEPENDENCY}
    assert sorted(by_dependency) == falling_back
    for dependency, alarm in by_dependency.items():
        callers = [
            f["Properties"]["Environment"]["Variables"]
            for f in dev.of_type("AWS::Lambda::Function").values()
            if f["Properties"].get("Environment", {}).get("Variables", {}).get("DEPENDENCY_NAME")
            == dependency
        ]
        assert callers, dependency
        for env in callers:
            assert alarm["Namespace"] == env["POWERTOOLS_METRICS_NAMESPACE"]
            assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
                lf.DEPENDENCY: dependency,
                "service": env["POWERTOOLS_SERVICE_NAME"],
            }


def test_deferred_alarm_watches_what_the_notifications_consumer_emits(dev: Synthesized) -> None:
    (function_id, function), *others = [
        (k, f)
        for k, f in dev.of_type("AWS::Lambda::Function").items()
        if f["Properties"]["Handler"].startswith(f"{notifications.__package__}.")
    ]
    assert not others
    env = function["Properties"]["Environment"]["Variables"]
    (alarm,) = [
        a["Properties"]
        for a in dev.of_type("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == METRIC_NOTIFICATIONS_DEFERRED
    ]
    assert alarm["Namespace"] == env["POWERTOOLS_METRICS_NAMESPACE"], function_id
    # Powertools Metrics(service=...) puts exactly this dimension on the handler's metrics.
    assert alarm["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}]
    assert alarm["Statistic"] == "Sum" and alarm["Threshold"] == 0


def _dimensions(metric: dict[str, Any]) -> dict[str, Any]:
    return {d["Name"]: d["Value"] for d in metric["MetricStat"]["Metric"].get("Dimensions", [])}


def _alarm_id_of(rule: dict[str, Any]) -> str:
    [arn] = rule["EventPattern"]["resources"]
    return str(arn["Fn::GetAtt"][0])


def test_the_controller_starts_on_the_failure_rate_of_logical_calls(dev: Synthesized) -> None:
    """Not on single attempts (a 429 a retry fixed): failed logical calls / all, above a minimum count."""
    alarms = dev.of_type("AWS::CloudWatch::Alarm")
    rules = [
        r["Properties"]
        for r in dev.of_type("AWS::Events::Rule").values()
        if r["Properties"].get("EventPattern", {}).get("source") == ["aws.cloudwatch"]  # schedules have none
    ]
    thresholds = dev.stack.config.alarms
    for dependency in (dev.stack.config.workflows.dependency,):
        [rule] = [
            r for r in rules if f'\\"circuit\\":\\"{dependency}\\"' in json.dumps(r["Targets"][0]["Input"])
        ]
        alarm = alarms[_alarm_id_of(rule)]["Properties"]
        metrics = [m for m in alarm["Metrics"] if "MetricStat" in m]
        assert {m["MetricStat"]["Metric"]["MetricName"] for m in metrics} == {METRIC_LOGICAL_CALLS}
        assert all(m["MetricStat"]["Metric"]["Namespace"] == dev.stack.config.service_name for m in metrics)
        by_outcome = {_dimensions(m)[DIMENSION_OUTCOME]: m["Id"] for m in metrics}
        assert set(by_outcome) == set(CALL_OUTCOMES)
        # The dimensions the client emits (lambdas/shared/dependency_client.py), plus Powertools' service.
        assert all(
            _dimensions(m)
            == {
                lf.DEPENDENCY: dependency,
                DIMENSION_OUTCOME: outcome,
                "service": dev.stack.config.service_name,
            }
            for outcome, m in ((_dimensions(m)[DIMENSION_OUTCOME], m) for m in metrics)
        )
        [expression] = [m["Expression"] for m in alarm["Metrics"] if "Expression" in m]
        assert f">= {thresholds.dependency_min_calls}" in expression
        numerator = expression.split("100 * (", 1)[1].split(") / (", 1)[0]
        assert {key for outcome, key in by_outcome.items() if f"FILL({key}, 0)" in numerator} == {
            by_outcome[outcome] for outcome in CALL_OUTCOMES_FAILED
        }
        assert alarm["Threshold"] == thresholds.dependency_failure_rate_percent
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_per_attempt_errors_and_refused_keys_still_alarm_without_starting_the_controller(
    dev: Synthesized,
) -> None:
    alarms = dev.of_type("AWS::CloudWatch::Alarm")
    controller_alarms = {
        _alarm_id_of(r["Properties"])
        for r in dev.of_type("AWS::Events::Rule").values()
        if r["Properties"].get("EventPattern", {}).get("source") == ["aws.cloudwatch"]  # schedules have none
    }
    for dependency in dev.stack.config.dependencies:
        attempt = [
            k
            for k, a in alarms.items()
            if any(
                n == METRIC_UPSTREAM_ERRORS and f'"Value": "{dependency}"' in d for n, d in _alarm_metrics(a)
            )
        ]
        assert len(attempt) == 1 and not set(attempt) & controller_alarms
        configuration = [
            a["Properties"]
            for a in alarms.values()
            if a["Properties"].get("MetricName") == METRIC_LOGICAL_CALLS
            and {"Name": DIMENSION_OUTCOME, "Value": CALL_OUTCOME_CONFIGURATION}
            in a["Properties"]["Dimensions"]
            and {"Name": lf.DEPENDENCY, "Value": dependency} in a["Properties"]["Dimensions"]
        ]
        assert len(configuration) == 1 and configuration[0]["Threshold"] == 0


def test_an_unavailable_idempotency_table_is_alarmed(dev: Synthesized) -> None:
    [alarm] = [
        a["Properties"]
        for a in dev.of_type("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == METRIC_IDEMPOTENCY_STORE_ERRORS
    ]
    assert alarm["Dimensions"] == [{"Name": "service", "Value": dev.stack.config.service_name}]
    assert alarm["Namespace"] == dev.stack.config.service_name and alarm["Threshold"] == 0
