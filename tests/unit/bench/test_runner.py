"""The drain lower bound: what the best possible recovery would have taken, from what the run measured."""

from __future__ import annotations

import pytest

from bench.results import DesignResult
from bench.runner import _drain_lower_bound
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
