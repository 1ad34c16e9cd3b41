"""The local alarm evaluator on datapoints placed by hand: statistics, periods, M of N, missing data,
metric math, composites, and the EMF lines it reads metrics from."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from localcloud.alarms import (
    ALARM,
    INSUFFICIENT_DATA,
    OK,
    AlarmDefinition,
    AlarmEvaluator,
    MathContext,
    MetricStat,
    NotEvaluableError,
    Query,
    StateChange,
    clear_window_s,
    composite_state,
    evaluate,
    evaluate_expression,
    parse_expression,
    read_template,
    statistic,
)
from localcloud.metrics import MetricKey, MetricStore, emf_datapoints

ERRORS = MetricKey.of("svc", "Errors", {"service": "svc"})
CALLS = MetricKey.of("svc", "Calls", {"service": "svc"})
AGE = MetricKey.of("AWS/SQS", "ApproximateAgeOfOldestMessage", {"QueueName": "orders"})


def alarm(
    key: MetricKey = ERRORS,
    *,
    stat: str = "Sum",
    threshold: float = 0,
    periods: int = 1,
    to_alarm: int | None = None,
    missing: str = "notBreaching",
    comparison: str = "GreaterThanThreshold",
    logical_id: str = "MonitoringErrorsAAAAAAAA",
) -> AlarmDefinition:
    return AlarmDefinition(
        logical_id=logical_id,
        queries=(Query("m", MetricStat(key, stat, 60)),),
        threshold=threshold,
        comparison=comparison,
        evaluation_periods=periods,
        datapoints_to_alarm=to_alarm or periods,
        treat_missing=missing,
    )


def store_with(points: dict[MetricKey, list[tuple[float, float]]]) -> MetricStore:
    store = MetricStore()
    for key, values in points.items():
        for t, value in values:
            store.record(key, t, value)
    return store


def test_statistics() -> None:
    values = [float(v) for v in range(1, 101)]
    assert statistic("Sum", values) == 5050
    assert statistic("Maximum", values) == 100
    assert statistic("Minimum", values) == 1
    assert statistic("Average", values) == 50.5
    assert statistic("SampleCount", values) == 100
    assert statistic("p99", values) == 99
    assert statistic("p50", [1.0, 2.0, 3.0]) == 2
    assert statistic("Sum", []) is None
    with pytest.raises(NotEvaluableError):
        statistic("TM(10%:90%)", values)


def test_periods_are_divided_by_the_compression_and_the_alarm_goes_to_alarm_and_back() -> None:
    # At /10 a 60 s period is 6 s of the run: errors in [6, 12) breach the second period only.
    store = store_with({ERRORS: [(1.0, 0), (7.0, 1), (8.0, 1), (13.0, 0)]})
    changes = AlarmEvaluator(alarm(), store, factor=10).run(end_s=20)
    assert changes == [
        StateChange(6.0, INSUFFICIENT_DATA, OK),
        StateChange(12.0, OK, ALARM),
        StateChange(18.0, ALARM, OK),
    ]


def test_only_complete_periods_are_evaluated() -> None:
    store = store_with({ERRORS: [(13.0, 1)]})
    assert AlarmEvaluator(alarm(), store, factor=10).run(end_s=17.9)[-1].to_state == OK


def test_m_of_n_needs_m_breaching_periods_within_the_last_n() -> None:
    # 2 of 3: one breaching period is not enough; two within three periods are.
    store = store_with({ERRORS: [(1, 1), (13, 1), (25, 1), (26, 1)]})
    evaluator = AlarmEvaluator(alarm(periods=3, to_alarm=2), store, factor=10)
    states = [evaluator.state(last, OK) for last in range(6)]
    # periods 0, 2 and 4 breach: [0..2] has 2, [1..3] has 1, [2..4] has 2, [3..5] has 1
    assert states == [OK, OK, ALARM, OK, ALARM, OK]


@pytest.mark.parametrize(
    ("treat", "expected"),
    [
        ("notBreaching", OK),
        ("breaching", ALARM),
        ("missing", INSUFFICIENT_DATA),
        ("ignore", "previous"),
    ],
)
def test_a_period_without_data_is_treated_as_the_alarm_says(treat: str, expected: str) -> None:
    evaluator = AlarmEvaluator(alarm(missing=treat), MetricStore(), factor=1)
    assert evaluator.state(0, "previous") == expected


def test_missing_and_ignore_judge_the_periods_that_have_data() -> None:
    # 3 of 3 with one period missing: the two present both breach, but fewer than 3 -> OK, not ALARM.
    store = store_with({ERRORS: [(1, 1), (13, 1)]})
    for treat in ("missing", "ignore"):
        assert AlarmEvaluator(alarm(periods=3, missing=treat), store, factor=10).state(2, OK) == OK
    # ... and counted as breaching they are three.
    assert AlarmEvaluator(alarm(periods=3, missing="breaching"), store, factor=10).state(2, OK) == ALARM


def test_how_long_work_waited_is_scaled_to_nominal_seconds() -> None:
    # 40 s of queue age in a run compressed /10 is 400 nominal seconds: above a 300 s threshold.
    store = store_with({AGE: [(1.0, 40.0)]})
    evaluator = AlarmEvaluator(alarm(AGE, stat="Maximum", threshold=300), store, factor=10)
    assert evaluator.state(0, OK) == ALARM
    assert AlarmEvaluator(alarm(AGE, stat="Maximum", threshold=300), store, factor=1).state(0, OK) == OK


def test_an_unknown_comparison_or_statistic_is_not_evaluable() -> None:
    with pytest.raises(NotEvaluableError):
        AlarmEvaluator(alarm(comparison="LessThanLowerOrGreaterThanUpperThreshold"), MetricStore(), 1)
    with pytest.raises(NotEvaluableError):
        AlarmEvaluator(alarm(stat="IQM"), MetricStore(), 1)


# ------------------------------------------------------------------------------------------ metric math


def run_math(expression: str, series: dict[str, dict[int, float]], indices: range = range(3)) -> Any:
    return evaluate_expression(parse_expression(expression), MathContext(series, indices, 60.0))


def test_fill_gives_every_period_a_value() -> None:
    assert run_math("FILL(a, 0) + FILL(b, 0)", {"a": {0: 1.0}, "b": {2: 2.0}}) == {0: 1.0, 1: 0.0, 2: 2.0}


def test_arithmetic_of_two_series_keeps_the_periods_both_have() -> None:
    assert run_math("a + b", {"a": {0: 1.0, 1: 1.0}, "b": {1: 2.0}}) == {1: 3.0}


def test_if_and_division_by_zero() -> None:
    series = {"requests": {0: 10.0, 1: 0.0}, "errors": {0: 2.0, 1: 0.0}}
    assert run_math("IF(requests > 0, 100 * errors / requests, 0)", series) == {0: 20.0, 1: 0.0}
    assert run_math("100 * errors / requests", series) == {0: 20.0}  # 0/0 has no value


def test_the_template_failure_rate_expression() -> None:
    expression = (
        "IF((FILL(o0, 0) + FILL(o1, 0) + FILL(o2, 0) + FILL(o3, 0)) >= 10, "
        "100 * (FILL(o1, 0) + FILL(o3, 0)) / (FILL(o0, 0) + FILL(o1, 0) + FILL(o2, 0) + FILL(o3, 0)), 0)"
    )
    series = {"o0": {0: 2.0, 1: 1.0}, "o1": {0: 8.0, 1: 1.0}, "o2": {}, "o3": {}}
    assert run_math(expression, series) == {0: 80.0, 1: 0.0, 2: 0.0}  # period 1: under 10 calls


def test_rate_is_per_nominal_second() -> None:
    # RATE(visible) * 60: the growth per minute of the template's 60 s periods, whatever the compression.
    assert run_math("RATE(visible) * 60", {"visible": {0: 5.0, 1: 8.0, 2: 8.0}}) == {1: 3.0, 2: 0.0}


def test_unsupported_math_is_not_evaluable_with_the_reason() -> None:
    with pytest.raises(NotEvaluableError, match="ANOMALY_DETECTION_BAND"):
        parse_expression("ANOMALY_DETECTION_BAND(m1, 2)")
    with pytest.raises(NotEvaluableError):
        parse_expression("a +")


def test_a_math_alarm_of_the_template_shape() -> None:
    rate = AlarmDefinition(
        logical_id="MonitoringRateAAAAAAAA",
        queries=(
            Query("expr", expression="IF(calls > 0, 100 * errors / calls, 0)"),
            Query("calls", MetricStat(CALLS, "Sum", 60), return_data=False),
            Query("errors", MetricStat(ERRORS, "Sum", 60), return_data=False),
        ),
        threshold=5,
        comparison="GreaterThanThreshold",
        evaluation_periods=1,
        datapoints_to_alarm=1,
        treat_missing="missing",
    )
    store = store_with({CALLS: [(1, 1), (2, 1), (7, 1)], ERRORS: [(1, 1), (7, 0)]})
    assert AlarmEvaluator(rate, store, factor=10).run(end_s=18) == [
        StateChange(6.0, INSUFFICIENT_DATA, ALARM),
        StateChange(12.0, ALARM, OK),
        StateChange(18.0, OK, INSUFFICIENT_DATA),  # no calls at all: no datapoint
    ]


# ------------------------------------------------------------------------------------------ composites


def test_composite_rules() -> None:
    states = {"A": ALARM, "B": OK, "C": INSUFFICIENT_DATA}
    assert composite_state('ALARM("alarm:A") OR ALARM("alarm:B")', states)
    assert not composite_state('ALARM("alarm:A") AND ALARM("alarm:B")', states)
    assert composite_state('ALARM("alarm:A") AND NOT ALARM("alarm:B")', states)
    assert composite_state('(OK("alarm:B") AND INSUFFICIENT_DATA("alarm:C")) OR FALSE', states)
    assert not composite_state('NOT (ALARM("alarm:A") OR TRUE)', states)
    for unreadable in ('ALARM("alarm:A") OR', 'ALARM("alarm:A"))', 'AT_LEAST(2, ALARM, ("a", "b"))'):
        with pytest.raises(NotEvaluableError):
            composite_state(unreadable, states)


def template() -> dict[str, Any]:
    def metric_alarm(name: str, missing: str = "notBreaching") -> dict[str, Any]:
        return {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "Namespace": "svc",
                "MetricName": name,
                "Dimensions": [{"Name": "service", "Value": "svc"}],
                "Statistic": "Sum",
                "Period": 60,
                "EvaluationPeriods": 1,
                "DatapointsToAlarm": 1,
                "Threshold": 0,
                "ComparisonOperator": "GreaterThanThreshold",
                "TreatMissingData": missing,
            },
        }

    return {
        "Resources": {
            "MonitoringErrorsAAAAAAAA": metric_alarm("Errors"),
            "MonitoringCallsBBBBBBBB": metric_alarm("Calls"),
            "MonitoringLostCCCCCCCC": {
                "Type": "AWS::CloudWatch::Alarm",
                "Properties": {
                    **metric_alarm("FailedInvocations")["Properties"],
                    "Namespace": "AWS/Events",
                    "Dimensions": [{"Name": "RuleName", "Value": {"Ref": "Rule"}}],
                },
            },
            "MonitoringDegradedDDDDDDDD": {
                "Type": "AWS::CloudWatch::CompositeAlarm",
                "Properties": {
                    "AlarmRule": {
                        "Fn::Join": [
                            "",
                            [
                                '(ALARM("',
                                {"Fn::GetAtt": ["MonitoringErrorsAAAAAAAA", "Arn"]},
                                '") OR ALARM("',
                                {"Fn::GetAtt": ["MonitoringLostCCCCCCCC", "Arn"]},
                                '"))',
                            ],
                        ]
                    }
                },
            },
        }
    }


def test_a_template_evaluated_end_to_end() -> None:
    read = read_template(template())
    assert {a.name for a in read.alarms} == {"Errors", "Calls", "Lost"}
    assert (
        read.composites[0].rule
        == '(ALARM("alarm:MonitoringErrorsAAAAAAAA") OR ALARM("alarm:MonitoringLostCCCCCCCC"))'
    )
    store = store_with({ERRORS: [(7, 1)], CALLS: [(1, 1)]})
    timeline = evaluate(read, store, end_s=18, factor=10)

    assert timeline.fired() == ["Calls", "Degraded", "Errors"]  # by when they first fired, then name
    assert timeline.alarm_windows("Errors") == [(12.0, 18.0)]
    assert timeline.alarm_windows("Calls") == [(6.0, 12.0)]
    assert timeline.alarm_windows("Degraded") == [(12.0, 18.0)]  # follows Errors; Lost counts as OK
    assert timeline.composites == ["Degraded"]
    assert "EventBridge target retries" in timeline.not_evaluable["Lost"]
    document = json.loads(json.dumps(timeline.document()))
    assert document["fired"]["Errors"] == [[12.0, 18.0]]


def test_the_clear_window_is_the_longest_evaluation_window_of_the_alarms_on_a_metric() -> None:
    stretched = template()
    stretched["Resources"]["MonitoringErrorsAAAAAAAA"]["Properties"]["EvaluationPeriods"] = 3
    assert clear_window_s(stretched, "Errors") == (3 + 1) * 60  # the window, and the evaluation after it
    assert clear_window_s(stretched, "Calls") == (1 + 1) * 60
    assert clear_window_s(stretched, "NeverAlarmed") == 0


def test_an_alarm_on_a_resource_the_run_does_not_have_is_not_evaluable() -> None:
    read = read_template(template())
    timeline = evaluate(read, MetricStore(), end_s=6, factor=10, absent={"svc": "not running here"})
    assert timeline.not_evaluable["Errors"] == "not running here"


# ------------------------------------------------------------------------------------------ EMF


def test_powertools_emf_lines_become_datapoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "svc")
    printed = io.StringIO()
    with (
        contextlib.redirect_stdout(printed),
        single_metric(
            name="UpstreamErrors",
            unit=MetricUnit.Count,
            value=1,
            namespace="svc",
            default_dimensions={"dependency": "partner", "status_class": "5xx"},
        ),
    ):
        pass
    line = json.loads(printed.getvalue().strip().splitlines()[-1])
    key = MetricKey.of(
        "svc", "UpstreamErrors", {"dependency": "partner", "status_class": "5xx", "service": "svc"}
    )
    assert emf_datapoints(line) == [(key, 1.0)]
    assert emf_datapoints({"message": "not a metric"}) == []


# ------------------------------------------------------------------------------------------ the report


def test_the_report_lists_the_alarms_that_fired_with_times_and_what_was_not_evaluated(tmp_path: Path) -> None:
    from localcloud import report
    from tests.unit.localcloud.runs import run_result, sample

    timeline = evaluate(read_template(template()), store_with({ERRORS: [(7, 1)]}), end_s=18, factor=10)
    result = run_result(alarms=timeline, samples=[sample(t) for t in range(19)])

    block = report.text(result).split("alarms (")[1]
    assert "  Errors    ALARM 12.0s -> OK 18.0s" in block
    assert "  Degraded  ALARM 12.0s -> OK 18.0s  (composite)" in block
    assert "not evaluable locally: 1" in block and "EventBridge target retries" in block
    assert report.timeline_png(result, tmp_path / "timeline.png").stat().st_size > 0


def test_an_alarm_that_breached_too_briefly_is_named_with_what_it_needs() -> None:
    from localcloud import report
    from localcloud.alarms import TemplateAlarms

    three_of_three = alarm(periods=3, logical_id="MonitoringUpstreamErrorsAAAAAAAA")
    timeline = evaluate(TemplateAlarms([three_of_three], [], {}), store_with({ERRORS: [(7, 4)]}), 30, 10)

    assert timeline.fired() == []
    assert timeline.breached_without_firing() == ["UpstreamErrors"]
    assert timeline.seen["UpstreamErrors"].peak == 4
    assert "breached, too briefly to fire: UpstreamErrors (1 period, needs 3 of 3)" in "\n".join(
        report.alarm_lines(timeline)
    )


def test_service_metrics_are_published_as_lambda_and_api_gateway_do() -> None:
    from localcloud.metrics import ApiRequest, record_invocation, record_request

    store = MetricStore()
    record_invocation(store, 1.0, "consumer", "start", 2, 0.0, False)
    record_invocation(store, 2.0, "consumer", "end", 2, 150.0, True)
    record_invocation(store, 3.0, "consumer", "throttle", 0, 0.0, True)
    record_request(store, 1.5, ApiRequest("Api", "dev", "GET", "/orders/{id}", 503, 12.0))
    record_request(store, 1.6, ApiRequest("Api", "dev", "POST", "/orders", 202, 8.0))
    record_request(store, 1.7, ApiRequest("Api", "dev", "GET", None, 403, 1.0))  # no route: per API only

    def values(namespace: str, name: str, dimensions: dict[str, str]) -> list[float]:
        return store.values(MetricKey.of(namespace, name, dimensions), 0, 10)

    function = {"FunctionName": "consumer"}
    assert values("AWS/Lambda", "Invocations", function) == [1]
    assert values("AWS/Lambda", "Errors", function) == [1]
    assert values("AWS/Lambda", "Throttles", function) == [0, 1]
    assert values("AWS/Lambda", "ConcurrentExecutions", function) == [2, 2]
    assert values("AWS/Lambda", "Duration", function) == [150]
    api = {"ApiName": "Api"}
    assert values("AWS/ApiGateway", "Count", api) == [1, 1, 1]
    assert values("AWS/ApiGateway", "5XXError", api) == [1, 0, 0]
    assert values("AWS/ApiGateway", "4XXError", api) == [0, 0, 1]
    # Method metrics: the shed status read's 503 is not the orders route's.
    orders = {"ApiName": "Api", "Stage": "dev", "Method": "POST", "Resource": "/orders"}
    status = {**orders, "Method": "GET", "Resource": "/orders/{id}"}
    assert values("AWS/ApiGateway", "5XXError", orders) == [0]
    assert values("AWS/ApiGateway", "5XXError", status) == [1]
