"""Run one scenario against both designs and turn what happened into ``DesignResult``s."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, TypeVar

import requests

from bench.naive import NaiveRun, phases_of
from bench.neighbour import HealthyConsumer
from bench.peer import PeerRun
from bench.results import CAPACITY_ORDERS, DesignResult, most_calls_for_one_order
from lambdas.contracts.api import IDEMPOTENCY_KEY_HEADER
from lambdas.partner_api.faults import FaultProfile
from localcloud import report
from localcloud.cloud import LocalCloud
from localcloud.fault_dependency import FaultDependency
from localcloud.front_door import producer_auth
from localcloud.scenarios import RunResult, Scenario, ScenarioRun, failed_call, sample_order

HEALTHY_NEIGHBOUR_LATENCY_MS = 500


def _healthy_neighbour_twin() -> FaultDependency:
    return FaultDependency([(0.0, FaultProfile(latency_ms=HEALTHY_NEIGHBOUR_LATENCY_MS), "healthy")]).start()


class _Design(Protocol):
    in_flight: int
    t0: float

    def run(self) -> None: ...


DesignT = TypeVar("DesignT", bound=_Design)


class _Served(NamedTuple):
    calls: list[tuple[float, Any]]  # timed from the design's t0
    charges: dict[str, int]  # order -> charges
    peak: int  # most calls in flight at once


class _Partner:
    """The faulted twin a modelled design calls, and the healthy neighbour beside it when they share a pool."""

    def __init__(self, scenario: Scenario, pool: int | None) -> None:
        self.started = time.monotonic()
        self.scenario = scenario
        self.pool = pool
        self.dependency = FaultDependency(phases_of(scenario), seed=7).start()
        self.healthy: HealthyConsumer | None = None
        self._neighbour_twin: FaultDependency | None = None

    def share_pool_with(self, in_flight: Callable[[], int]) -> None:
        """Start the neighbour, whose workers run while the design leaves them slots (``in_flight``)."""
        if self.pool is None:
            return
        self._neighbour_twin = _healthy_neighbour_twin()
        self.healthy = HealthyConsumer(self.pool, in_flight, self._neighbour_twin).start()

    def run(
        self, build: Callable[[FaultDependency], DesignT], *, settle_s: float = 0.0
    ) -> tuple[DesignT, _Served]:
        """Build the design on the twin and run it (beside the neighbour when they share a pool), then stop
        everything: the design, and what the twin served it. ``settle_s``: how long calls the design
        abandoned may still finish (a slow partner serves them on): they count once finished."""
        try:
            design = build(self.dependency)
            self.share_pool_with(lambda: design.in_flight)
            design.run()
            if settle_s:
                if self.healthy is not None:
                    self.healthy.stop()
                settle = time.monotonic() + settle_s
                while self.dependency.in_flight and time.monotonic() < settle:
                    time.sleep(0.1)
            served = _Served(
                self.calls(design.t0), self.dependency.charges_by_order(), self.dependency.peak_in_flight
            )
        finally:
            self.stop()
        return design, served

    def calls(self, t0: float) -> list[tuple[float, Any]]:
        """Every call the twin served, timed from the design's ``t0`` (its clock started with ours)."""
        offset = t0 - self.started
        return [(c.t - offset, c) for c in self.dependency.calls()]

    def stop(self) -> None:
        self.dependency.stop()
        if self.healthy is not None:
            self.healthy.stop()
        if self._neighbour_twin is not None:
            self._neighbour_twin.stop()

    def neighbour_rates(self, result: DesignResult, t0: float) -> None:
        if self.healthy is None:
            return
        start, end = self.scenario.fault_window or (0.0, self.scenario.load_s)
        result.healthy_rate_before = self.healthy.rate(t0 + 1.0, t0 + start)
        result.healthy_rate_during = self.healthy.rate(t0 + start, t0 + end)


def _first_charge_at(calls: list[tuple[float, Any]]) -> dict[str, float]:
    """When each order's first charge was made (the call's start plus its latency)."""
    charged_at: dict[str, float] = {}
    for t, call in calls:
        if call.new_charge and call.order_id and call.order_id not in charged_at:
            charged_at[call.order_id] = t + call.latency_ms / 1000.0
    return charged_at


# ------------------------------------------------------------------------------------------ (a) naive


def run_naive(
    scenario: Scenario, *, api_limit_s: float, function_timeout_s: float, pool: int | None = None
) -> DesignResult:
    partner = _Partner(scenario, pool)
    naive, (calls, charges, peak) = partner.run(
        lambda twin: NaiveRun(
            scenario, twin, api_limit_s=api_limit_s, function_timeout_s=function_timeout_s, slots=pool
        ),
        settle_s=15,
    )
    start, end = scenario.fault_window or (0.0, scenario.load_s)
    charged_at = _first_charge_at(calls)
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
        wall_s=time.monotonic() - partner.started,
    )
    result.most_calls_for_one_order = most_calls_for_one_order(
        (c.order_id for _, c in calls), (r.order_id for r in naive.orders)
    )
    result.notes.append(
        f"peak function invocations in flight {naive.peak_in_flight}; throttled by the pool {naive.throttled}"
    )
    partner.neighbour_rates(result, naive.t0)
    return result


# ------------------------------------------------------------------------------------------ (b) peer


def run_peer(
    scenario: Scenario, *, function_timeout_s: float, compress: float, pool: int | None = None
) -> DesignResult:
    """The peer runs until every message is charged or dead-lettered (its whole receive budget)."""
    partner = _Partner(scenario, pool)
    peer, (calls, charges, peak) = partner.run(
        lambda twin: PeerRun(
            scenario, twin, function_timeout_s=function_timeout_s, compress=compress, slots=pool
        )
    )
    start, end = scenario.fault_window or (0.0, scenario.load_s)
    messages = peer.queue.messages
    charged_at = _first_charge_at(calls)
    dead = {m.order["orderId"] for m in peer.queue.dead_lettered()}
    charged = {order for order, n in charges.items() if n >= 1}
    unsettled = [m for m in messages if not (m.deleted or m.dead_lettered)]
    result = DesignResult(
        design="peer",
        scenario=scenario.name,
        requests=len(messages),
        fulfilled=sum(1 for m in messages if m.order["orderId"] in charged),
        rejected=0,
        lost=0
        if peer.drained_at_s is None
        else len([m for m in unsettled if m.order["orderId"] not in charged]),
        in_dlq=len(dead),
        duplicates=sum(1 for n in charges.values() if n > 1),
        calls_total=len(calls),
        calls_during_fault=sum(1 for t, _ in calls if start <= t < end),
        requests_during_fault=sum(1 for m in messages if start <= m.sent < end),
        peak_dependency_in_flight=peak,
        peak_consumer_concurrency=peer.peak_in_flight,
        cap=pool,
        done_ms=[
            (charged_at[m.order["orderId"]] - m.sent) * 1000.0
            for m in messages
            if m.order["orderId"] in charged_at
        ],
        wall_s=time.monotonic() - partner.started,
    )
    result.queued_at_deadline = 0 if peer.drained_at_s is not None else len(unsettled)
    result.most_calls_for_one_order = most_calls_for_one_order(
        (c.order_id for _, c in calls), (m.order["orderId"] for m in messages)
    )
    result.charged_in_dlq = len(dead & charged)
    if scenario.fault_window is not None:
        result.backlog_at_recovery = next((depth for t, depth in peer.depth_samples if t >= end), 0)
        if peer.drained_at_s is not None:
            result.drain_s = max(0.0, peer.drained_at_s - end)
    result.notes.append(
        f"{peer.invocations} invocations, {peer.failed_invocations} failed (the whole batch came back); "
        f"peak concurrent batches {peer.peak_in_flight}; visibility timeout {peer.queue.visibility_timeout_s:g} s, "
        f"maxReceiveCount {peer.queue.max_receive_count}"
    )
    if peer.drained_at_s is None:
        result.notes.append("the queue did NOT drain before the deadline")
    partner.neighbour_rates(result, peer.t0)
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
    cloud: LocalCloud,
    scenario: Scenario,
    *,
    probe_interval_s: float,
    worst_case_calls: int | None = None,
    pool: int | None = None,
    drain_timeout_s: float | None = None,
) -> tuple[DesignResult, RunResult]:
    started = time.monotonic()
    throughput = measure_throughput_at_cap(cloud, scenario) if scenario.fault_window else None
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
        lost=counts["lost"],
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
    result.queued_at_deadline = counts["queued"]
    result.most_calls_for_one_order = most_calls_for_one_order(
        (c.order_id for c in outcome.calls), first_sent
    )
    result.worst_case_calls = worst_case_calls
    if refused:
        result.notes.append(
            f"front door answered {refused} times with an error, retried by the client with the same key"
        )
    if not outcome.drained:
        result.notes.append("the queue did NOT drain before the deadline")
    result.notes.append(
        f"consumer peak busy environments {outcome.peak_consumer_in_flight} (cap {outcome.cap})"
    )
    if throughput is not None:
        _drain_lower_bound(result, outcome, throughput, probe_interval_s)
    _recovery(result, outcome, counts)
    if healthy is not None:
        base = outcome.started_at
        result.healthy_rate_before = healthy.rate(base + 1.0, base + start)
        result.healthy_rate_during = healthy.rate(base + start, base + end)
    return result, outcome


def _recovery(result: DesignResult, outcome: RunResult, counts: dict[str, int]) -> None:
    """Charged-and-dead-lettered orders; failed calls until the circuit record opened, and the consumers'
    until the whole fleet stopped; time to close."""
    result.charged_in_dlq = counts["charged+dlq"]
    opened = outcome.circuit_opened_during_fault()
    stopped = outcome.fleet_stopped_during_fault()
    if outcome.fault_window is not None and opened is not None and stopped is not None:
        start = outcome.fault_window[0]
        result.failed_calls_before_open = sum(
            1 for c in outcome.calls_between(start, opened) if failed_call(c, outcome.attempt_timeout_ms)
        )
        result.failed_calls_before_stop = sum(
            1
            for c in outcome.consumer_calls_between(start, stopped)
            if failed_call(c, outcome.attempt_timeout_ms)
        )
        result.closed_after_recovery_s = outcome.circuit_closed_after_recovery()


def measure_throughput_at_cap(cloud: LocalCloud, scenario: Scenario) -> float:
    """Orders per second the consumer completes with a healthy dependency and a full queue, at its cap.

    The dependency answers with the scenario's first (healthy) profile; ``CAPACITY_ORDERS`` (at least
    ``2 x cap x batch size``) orders go through the front door at once, and the clock runs from the first
    202 until the queue is empty. This is the capacity a drain after recovery can at best reach, measured
    on this machine: a backlog the size of a drain's, so the pollers' start-up does not pass for capacity
    (with 2 x cap x batch size = 10 orders at batch size 1, it was most of the time measured).
    """
    run = ScenarioRun(cloud, scenario)
    run.wait_until_at_rest()
    run.partner.set_profile(scenario.phases[0].profile, "capacity")
    orders = max(CAPACITY_ORDERS, 2 * run.poller.concurrency * run.poller.source.batch_size)
    session = requests.Session()
    session.auth = producer_auth(cloud.emulator.region)  # every method is AWS_IAM
    url = cloud.front_door.base_url + "orders"  # type: ignore[union-attr]
    first: float | None = None
    for n in range(orders):
        order = sample_order(n, f"cap-{run.prefix}", run.rng)
        response = session.post(
            url, json=order, headers={IDEMPOTENCY_KEY_HEADER: order["orderId"]}, timeout=10
        )
        response.raise_for_status()
        first = first or time.monotonic()
    assert first is not None
    deadline = first + 30 * orders  # a generous stop for a broken run; never reached by a working one
    while time.monotonic() < deadline:
        visible, in_flight = cloud.queue_depth(run.queue_url)
        if visible == 0 and in_flight == 0 and run.poller.stats.in_flight == 0:
            return orders / (time.monotonic() - first)
        time.sleep(0.05)
    raise RuntimeError(f"{orders} orders did not drain with a healthy dependency")


def _drain_lower_bound(
    result: DesignResult, outcome: RunResult, throughput: float, probe_interval_s: float
) -> None:
    """The earliest the queue could be empty after the recovery: never before the load ends, and never
    before one probe interval (the circuit closes at the next probe) plus everything queued at or after
    the recovery processed at the throughput measured at the cap."""
    if outcome.fault_window is None:
        return
    recovered = outcome.fault_window[1]
    after = [s for s in outcome.samples if s.t >= recovered]
    if not after:
        return
    backlog = after[0].visible + after[0].in_flight
    arriving = sum(1 for m in outcome.messages if m.t >= after[0].t)
    result.backlog_at_recovery = backlog
    result.throughput_at_cap = throughput
    result.drain_lower_bound_s = max(
        outcome.load_ended_s - recovered, probe_interval_s + (backlog + arriving) / throughput
    )
