"""Run one scenario against both designs and turn what happened into ``DesignResult``s."""

from __future__ import annotations

import statistics
import time
from typing import Any

import requests

from bench.naive import NaiveRun, phases_of
from bench.neighbour import HealthyConsumer
from bench.results import DesignResult
from lambdas.partner_api.faults import FaultProfile
from localcloud import report
from localcloud.cloud import LocalCloud
from localcloud.fault_dependency import FaultDependency
from localcloud.scenarios import RunResult, Scenario, ScenarioRun, failed_call

HEALTHY_NEIGHBOUR_LATENCY_MS = 500


def _healthy_neighbour_twin() -> FaultDependency:
    return FaultDependency([(0.0, FaultProfile(latency_ms=HEALTHY_NEIGHBOUR_LATENCY_MS), "healthy")]).start()


# ------------------------------------------------------------------------------------------ (a) naive


def run_naive(
    scenario: Scenario, *, api_limit_s: float, function_timeout_s: float, pool: int | None = None
) -> DesignResult:
    started = time.monotonic()
    dependency = FaultDependency(phases_of(scenario), seed=7).start()
    neighbour_twin: FaultDependency | None = None
    healthy: HealthyConsumer | None = None
    try:
        naive = NaiveRun(
            scenario,
            dependency,
            api_limit_s=api_limit_s,
            function_timeout_s=function_timeout_s,
            slots=pool,
        )
        if pool is not None:
            neighbour_twin = _healthy_neighbour_twin()
            healthy = HealthyConsumer(pool, lambda: naive.in_flight, neighbour_twin).start()
        naive.run()
        if healthy is not None:
            healthy.stop()
        # Calls the chain abandoned are still being served (a slow partner): they count once finished.
        settle = time.monotonic() + 15
        while dependency.in_flight and time.monotonic() < settle:
            time.sleep(0.1)
        offset = naive.t0 - started  # the twin's clock started (almost) with `started`
        calls = [(c.t - offset, c) for c in dependency.calls()]
        charges = dependency.charges_by_order()
        peak = dependency.peak_in_flight
    finally:
        dependency.stop()
        if healthy is not None:
            healthy.stop()
        if neighbour_twin is not None:
            neighbour_twin.stop()
    start, end = scenario.fault_window or (0.0, scenario.load_s)
    charged_at: dict[str, float] = {}
    for t, call in calls:
        if call.new_charge and call.order_id and call.order_id not in charged_at:
            charged_at[call.order_id] = t + call.latency_ms / 1000.0
    answer_ms = [
        ((r.answered if r.answered is not None else r.sent + api_limit_s) - r.sent) * 1000.0
        for r in naive.orders
    ]
    done_ms = [
        (charged_at[r.order_id] - (r.sent - naive.t0)) * 1000.0
        for r in naive.orders
        if r.order_id in charged_at
    ]
    result = DesignResult(
        design="naive",
        scenario=scenario.name,
        requests=len(naive.orders),
        fulfilled=sum(1 for r in naive.orders if charges.get(r.order_id, 0) >= 1),
        rejected=sum(1 for r in naive.orders if r.status != 200),
        lost=sum(1 for r in naive.orders if r.status == 200 and charges.get(r.order_id, 0) == 0),
        in_dlq=0,
        duplicates=sum(1 for n in charges.values() if n > 1),
        calls_total=len(calls),
        calls_during_fault=sum(1 for t, _ in calls if start <= t < end),
        requests_during_fault=sum(1 for r in naive.orders if start <= r.sent - naive.t0 < end),
        peak_dependency_in_flight=peak,
        peak_consumer_concurrency=naive.peak_waiting_on_dependency,
        cap=pool,
        answer_ms=answer_ms,
        done_ms=done_ms,
        wall_s=time.monotonic() - started,
    )
    result.notes.append(
        f"peak function invocations in flight {naive.peak_in_flight}; throttled by the pool {naive.throttled}"
    )
    if healthy is not None:
        base = naive.t0
        result.healthy_rate_before = healthy.rate(base + 1.0, base + start)
        result.healthy_rate_during = healthy.rate(base + start, base + end)
    return result


# ------------------------------------------------------------------------------------------ (b) architecture


class _TimedRun(ScenarioRun):
    """The local cloud's scenario run, also timing how long each client waited for its answer."""

    answer_ms: list[float]

    def _post(
        self, session: requests.Session, url: str, order: dict[str, Any], key: str, origin: str
    ) -> None:
        sent = time.monotonic()
        super()._post(session, url, order, key, origin)
        if origin == "api":
            self.answer_ms.append((time.monotonic() - sent) * 1000.0)


def run_architecture(
    cloud: LocalCloud, scenario: Scenario, *, pool: int | None = None, drain_timeout_s: float | None = None
) -> tuple[DesignResult, RunResult]:
    started = time.monotonic()
    # A fixed schedule: the naive chain runs the same one, so the designs are compared like for like.
    run = _TimedRun(cloud, scenario, drain_timeout_s=drain_timeout_s, adaptive_timeline=False)
    run.answer_ms = []
    healthy: HealthyConsumer | None = None
    neighbour_twin: FaultDependency | None = None
    if pool is not None:
        neighbour_twin = _healthy_neighbour_twin()
        poller_stats = run.poller.stats
        healthy = HealthyConsumer(pool, lambda: poller_stats.in_flight, neighbour_twin).start()
    try:
        outcome = run.run()
    finally:
        if healthy is not None:
            healthy.stop()
        if neighbour_twin is not None:
            neighbour_twin.stop()
    summary = report.summary(outcome)
    start, end = scenario.fault_window or (0.0, scenario.load_s)
    counts = outcome.counts()
    charged_at: dict[str, float] = {}
    for call in outcome.calls:
        if call.new_charge and call.order_id and call.order_id not in charged_at:
            charged_at[call.order_id] = call.t + call.latency_ms / 1000.0
    first_sent: dict[str, float] = {}
    for message in outcome.accepted:
        first_sent.setdefault(message.order_id, message.t)
    requests_made = len([m for m in outcome.messages if m.origin == "api"])
    refused = sum(outcome.rejected.values())
    result = DesignResult(
        design="architecture",
        scenario=scenario.name,
        requests=requests_made,
        fulfilled=sum(1 for order in first_sent if outcome.charges.get(order, 0) >= 1),
        rejected=0,
        lost=counts["lost"] + counts["queued"],
        in_dlq=counts["dlq"],
        duplicates=int(summary["duplicate_side_effects"]),  # type: ignore[call-overload]
        calls_total=len(outcome.calls),
        calls_during_fault=len(outcome.calls_between(start, end)),
        requests_during_fault=len([m for m in outcome.accepted_between(start, end) if m.origin == "api"]),
        peak_dependency_in_flight=outcome.peak_dependency_in_flight,
        peak_consumer_concurrency=outcome.peak_consumer_in_flight,
        cap=outcome.cap,
        answer_ms=list(run.answer_ms),
        done_ms=[(charged_at[o] - t) * 1000.0 for o, t in first_sent.items() if o in charged_at],
        drain_s=outcome.drain_time_after_recovery(),
        wall_s=time.monotonic() - started,
    )
    if refused:
        result.notes.append(
            f"front door answered {refused} times with an error, retried by the client with the same key"
        )
    if not outcome.drained:
        result.notes.append("the queue did NOT drain before the deadline")
    result.notes.append(
        f"consumer peak busy environments {outcome.peak_consumer_in_flight} (cap {outcome.cap})"
    )
    _drain_lower_bound(result, outcome, scenario)
    _recovery(result, outcome, counts)
    if healthy is not None:
        base = outcome.started_at
        result.healthy_rate_before = healthy.rate(base + 1.0, base + start)
        result.healthy_rate_during = healthy.rate(base + start, base + end)
    return result, outcome


def _recovery(result: DesignResult, outcome: RunResult, counts: dict[str, int]) -> None:
    """Charged-and-dead-lettered orders; failed calls until the circuit record opened; time to close."""
    result.charged_in_dlq = counts["charged+dlq"]
    opened = outcome.circuit_opened_during_fault()
    if outcome.fault_window is not None and opened is not None:
        result.failed_calls_before_open = sum(
            1
            for c in outcome.calls_between(outcome.fault_window[0], opened)
            if failed_call(c, outcome.attempt_timeout_ms)
        )
        result.closed_after_recovery_s = outcome.circuit_closed_after_recovery()


def _drain_lower_bound(result: DesignResult, outcome: RunResult, scenario: Scenario) -> None:
    """backlog at recovery / capacity, capacity = cap / median latency of successful calls before the fault."""
    if scenario.fault_window is None:
        return
    start, end = scenario.fault_window
    after = [s for s in outcome.samples if s.t >= end]
    if not after:
        return
    backlog = after[0].visible + after[0].in_flight
    result.backlog_at_recovery = backlog
    healthy = [c.latency_ms for c in outcome.calls if c.t < start and 200 <= c.status < 300]
    latency_s = max(statistics.median(healthy) / 1000.0, 0.001) if healthy else 0.001
    capacity = outcome.cap / latency_s
    result.drain_lower_bound_s = backlog / capacity if backlog else None
