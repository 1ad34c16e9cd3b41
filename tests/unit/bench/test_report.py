"""The benchmark's targets for this architecture, judged on a result (no run needed)."""

from __future__ import annotations

import dataclasses

from bench.report import targets
from bench.results import DesignResult


def architecture(**measured: object) -> DesignResult:
    base: dict[str, object] = {
        "design": "architecture",
        "scenario": "long-outage",
        "requests": 100,
        "fulfilled": 100,
        "rejected": 0,
        "lost": 0,
        "in_dlq": 0,
        "duplicates": 0,
        "calls_total": 104,
        "calls_during_fault": 10,
        "requests_during_fault": 60,
        "peak_dependency_in_flight": 3,
        "peak_consumer_concurrency": 5,
        "cap": 5,
    }
    return DesignResult(**{**base, **measured})  # type: ignore[arg-type]


def verdicts(label: str, result: DesignResult) -> dict[str, bool]:
    return {t.name: t.met for t in targets(label, result, threshold=5, close_within_s=4.0)}


def test_a_long_outage_is_judged_on_every_recovery_target() -> None:
    judged = verdicts(
        "long-outage",
        architecture(
            failed_calls_before_open=15, closed_after_recovery_s=3.5, drain_s=9.0, drain_lower_bound_s=7.0
        ),
    )
    assert judged == {
        "0 lost": True,
        "0 duplicate side effects": True,
        "peak concurrency spent on the dependency <= cap": True,
        "no charged order in a DLQ": True,
        "0 messages in any DLQ": True,
        "<= 1.05 dependency calls per request, whole run": True,
        "<= 3 x failure threshold (15) failed calls before the fleet stopped": True,
        "circuit closed <= recovery window + one probe interval (4 s) after recovery": True,
        "drain <= 1.5 x lower bound": True,  # 9 s vs 7 s
    }


def test_missed_targets_are_reported_as_missed() -> None:
    judged = verdicts(
        "long-outage",
        architecture(
            in_dlq=2,
            charged_in_dlq=1,
            calls_total=130,
            failed_calls_before_open=16,
            closed_after_recovery_s=4.5,
            drain_s=11.0,
            drain_lower_bound_s=7.0,
        ),
    )
    assert not judged["0 messages in any DLQ"]
    assert not judged["no charged order in a DLQ"]
    assert not judged["<= 1.05 dependency calls per request, whole run"]
    assert not judged["<= 3 x failure threshold (15) failed calls before the fleet stopped"]
    assert not judged["circuit closed <= recovery window + one probe interval (4 s) after recovery"]
    assert not judged["drain <= 1.5 x lower bound"]


def test_a_slow_dependency_may_dead_letter_but_never_a_charged_order() -> None:
    judged = verdicts("slow", architecture(scenario="slow", in_dlq=3))
    assert "0 messages in any DLQ" not in judged
    assert judged["no charged order in a DLQ"]


def test_an_order_called_more_often_than_the_synth_worst_case_is_a_missed_target() -> None:
    target = "no order caused more dependency calls than the synth's worst case for its path"
    assert verdicts(
        "outage", architecture(scenario="outage", most_calls_for_one_order=9, worst_case_calls=9)
    )[target]
    assert not verdicts(
        "outage", architecture(scenario="outage", most_calls_for_one_order=10, worst_case_calls=9)
    )[target]


def test_the_fleet_target_is_judged_until_the_whole_fleet_stopped_when_that_was_measured() -> None:
    name = "<= 3 x failure threshold (15) failed calls before the fleet stopped"
    stopped_late = architecture(failed_calls_before_open=12, failed_calls_before_stop=16)
    assert not verdicts("outage", stopped_late)[name]
    assert verdicts("outage", architecture(failed_calls_before_open=12, failed_calls_before_stop=15))[name]
    assert verdicts("outage", architecture(failed_calls_before_open=12))[
        name
    ]  # a result from before the measure


def test_open_fast_is_judged_where_every_call_fails_not_in_a_brown_out() -> None:
    name = "<= 3 x failure threshold (15) failed calls before the fleet stopped"
    opened_late = architecture(failed_calls_before_open=23, failed_calls_before_stop=25)
    for label in ("outage", "slow", "throttling", "noisy-neighbour", "long-outage"):
        assert not verdicts(label, dataclasses.replace(opened_late, scenario=label))[name]
    # Half its calls still succeed: a breaker that opens on it at all opens late by design.
    assert name not in verdicts("brownout", dataclasses.replace(opened_late, scenario="brownout"))
