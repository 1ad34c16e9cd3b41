"""What one design measured in one scenario, and the helpers both designs share."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# Orders the healthy throughput at the cap is measured with (bench/runner.py): about a scenario's backlog at
# recovery, so the pollers' start-up does not pass for capacity.
CAPACITY_ORDERS = 100


def most_calls_for_one_order(order_ids: Iterable[str | None], wanted: Iterable[str]) -> int:
    """The highest count of ``order_ids`` (one per dependency call) among the ``wanted`` orders."""
    counts = Counter(order_ids)
    return max((counts[order] for order in set(wanted)), default=0)


@dataclass
class DesignResult:
    design: str  # "naive" | "architecture"
    scenario: str
    requests: int  # orders the clients tried to place
    fulfilled: int  # orders charged at least once at the dependency at the end of the run
    rejected: (
        int  # the client got an error or gave up (naive: 5xx / timeout; architecture: refused after retries)
    )
    lost: int  # accepted (2xx to the client) but never charged nor parked in a DLQ, the queue drained
    in_dlq: int
    duplicates: int  # orders charged more than once
    calls_total: int
    calls_during_fault: int
    requests_during_fault: int
    peak_dependency_in_flight: int  # requests in flight at the dependency (incl. ones the caller abandoned)
    peak_consumer_concurrency: int  # function invocations busy on the dependency (what a bulkhead caps)
    cap: int | None  # None: unbounded
    answer_ms: list[float] = field(default_factory=list)  # time for the client to get an answer
    done_ms: list[float] = field(default_factory=list)  # request sent -> charge created at the dependency
    drain_s: float | None = None
    drain_lower_bound_s: float | None = None
    backlog_at_recovery: int = 0
    queued_at_deadline: int = 0  # accepted and still queued when the run's drain deadline passed
    throughput_at_cap: float | None = None  # orders/s with a healthy dependency and a full queue
    healthy_rate_before: float | None = None  # healthy consumer completions/s before the fault
    healthy_rate_during: float | None = None
    wall_s: float = 0.0
    # Recovery (this architecture; None where it does not apply): charged orders that still ended in a
    # DLQ, failed dependency calls from the fault's start until the circuit record opened (as sampled),
    # the consumers' failed calls until the whole fleet stopped (the record first left OPEN again: every
    # consumer call while it was OPEN came from an environment that had not stopped yet), and how long
    # after the recovery the circuit was CLOSED again.
    charged_in_dlq: int = 0
    # The most dependency calls any one order caused, and the worst case the synth computed for the path
    # (stacks/retry_budget.py; None where no synth applies).
    most_calls_for_one_order: int = 0
    worst_case_calls: int | None = None
    failed_calls_before_open: int | None = None
    failed_calls_before_stop: int | None = None
    closed_after_recovery_s: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def calls_per_request(self) -> float:
        """Dependency calls per order over the whole scenario (1.0 = every order charged in one call)."""
        return self.calls_total / self.requests if self.requests else 0.0

    @property
    def calls_per_request_during_fault(self) -> float:
        return self.calls_during_fault / self.requests_during_fault if self.requests_during_fault else 0.0

    @property
    def not_fulfilled(self) -> int:
        return self.requests - self.fulfilled

    @property
    def drain_ratio(self) -> float | None:
        if self.drain_s is None or not self.drain_lower_bound_s:
            return None
        return self.drain_s / self.drain_lower_bound_s

    @property
    def healthy_ratio(self) -> float | None:
        if (
            self.healthy_rate_before is None
            or self.healthy_rate_during is None
            or not self.healthy_rate_before
        ):
            return None
        return self.healthy_rate_during / self.healthy_rate_before


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]
