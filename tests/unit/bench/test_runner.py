"""The drain lower bound: what the best possible recovery would have taken, from what the run measured."""

from __future__ import annotations

import pytest

from bench.results import DesignResult
from bench.runner import _drain_lower_bound
from localcloud.fault_dependency import CallRecord
from localcloud.scenarios import RunResult, SentMessage
from tests.unit.localcloud.runs import run_result, sample


def _run(
    *, backlog: int, arrivals_after: int, recovered: float = 20.0, load_ended: float = 25.0
) -> RunResult:
    messages = [
        SentMessage(recovered + 0.3 + 0.1 * n, f"o-{n}", f"k-{n}", f"m-{n}", "api")
        for n in range(arrivals_after)
    ]
    messages.append(SentMessage(1.0, "o-early", "k-early", "m-early", "api"))
    return run_result(
        load_ended_s=load_ended,
        samples=[sample(recovered - 0.25, backlog), sample(recovered + 0.25, backlog), sample(40.0, 0)],
        messages=messages,
        fault_window=(10.0, recovered),
    )


def _bound(run: RunResult, *, throughput: float, probe_interval_s: float) -> DesignResult:
    result = DesignResult("architecture", "outage", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4)
    _drain_lower_bound(result, run, throughput, probe_interval_s)
    return result


def test_a_backlog_drains_no_faster_than_one_probe_plus_its_orders_at_the_measured_throughput() -> None:
    # 60 queued + 20 arriving after the recovery, 10 orders/s, the next probe 3 s away: 3 + 8 s.
    result = _bound(_run(backlog=60, arrivals_after=20), throughput=10.0, probe_interval_s=3.0)
    assert result.backlog_at_recovery == 60
    assert result.throughput_at_cap == 10.0
    assert result.drain_lower_bound_s == pytest.approx(11.0)


def test_the_queue_cannot_be_empty_before_the_load_ends() -> None:
    result = _bound(
        _run(backlog=5, arrivals_after=0, recovered=20.0, load_ended=40.0),
        throughput=100.0,
        probe_interval_s=1.0,
    )
    assert result.drain_lower_bound_s == pytest.approx(20.0)


def test_the_most_calls_for_one_order_counts_only_the_orders_the_clients_sent() -> None:
    from bench.results import most_calls_for_one_order

    calls = ["o-1", "o-2", "o-1", "canary-probe", "canary-probe", "canary-probe", None]
    assert most_calls_for_one_order(calls, ["o-1", "o-2", "o-3"]) == 2
    assert most_calls_for_one_order([], ["o-1"]) == 0


def _call(t: float, key: str | None, status: int = 503, latency_ms: float = 5.0) -> CallRecord:
    return CallRecord(t, "POST", "/charges", status, latency_ms, "p", key, None, False)


def test_failed_calls_are_counted_until_the_whole_fleet_stopped_not_only_until_the_record_opened() -> None:
    from bench.runner import _recovery

    messages = [SentMessage(1.0 + n, f"o-{n}", f"k-{n}", f"m-{n}", "api") for n in range(4)]
    calls = [
        _call(9.0, "k-0"),  # before the fault: not counted
        _call(10.5, "k-0"),
        _call(11.0, "k-1", status=200, latency_ms=8_000),  # slower than the attempt timeout: failed
        _call(11.5, "k-1", status=200),  # answered in time: not a failure
        _call(12.2, "k-2"),  # after the record opened: an environment that had not stopped yet
        _call(12.4, "canary-key"),  # the controller's probe: not the fleet's
        _call(14.0, "k-3"),  # the record had left OPEN (a probe): not counted
    ]
    samples = [
        sample(11.75),
        sample(12.0, circuit="OPEN"),
        sample(13.0, circuit="OPEN"),
        sample(13.5, circuit="HALF_OPEN"),
    ]
    run = run_result(samples=samples, messages=messages, calls=calls, fault_window=(10.0, 20.0))
    result = DesignResult("architecture", "outage", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4)

    _recovery(result, run, {"charged+dlq": 0})

    assert run.fleet_stopped_during_fault() == 13.5
    assert result.failed_calls_before_open == 2  # 10.5 and 11.0: until the record was sampled OPEN
    assert result.failed_calls_before_stop == 3  # and 12.2: the fleet had not stopped yet


def test_the_fleet_stopped_at_the_latest_when_the_dependency_recovered() -> None:
    run = run_result(
        samples=[sample(12.0, circuit="OPEN"), sample(30.0, circuit="CLOSED")], fault_window=(10.0, 20.0)
    )
    assert run.fleet_stopped_during_fault() == 20.0
    assert run_result(samples=[sample(12.0)], fault_window=(10.0, 20.0)).fleet_stopped_during_fault() is None
