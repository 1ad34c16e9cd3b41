"""Which catalogue patterns a run showed, judged on what it recorded (docs/patterns.md's demo column).

Each name below is a row of the catalogue. ``scenario_patterns`` looks at a scenario's account (the
partner's calls, the sampled queue and circuit, the status reads, the DLQ, the alarms) and returns the
patterns it has evidence for, each with that evidence in a sentence; the tour records its own
(``localcloud/tour.py``). ``tests/e2e`` compares them with the catalogue: a row may name a scenario only
if that scenario's run recorded the pattern.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from localcloud.scenarios import RunResult

STORAGE_FIRST: Final = "Storage-first ingestion"
REQUEST_VALIDATION: Final = "Request validation, clear 4xx"
LOAD_LEVELING: Final = "Queue load leveling"
BULKHEAD: Final = "Bulkhead (reserved concurrency)"
BACKOFF: Final = "Retry with exponential backoff and full jitter"
RETRY_AFTER: Final = "Retry-After honoured"
NO_4XX_RETRY: Final = "Never retry a 4xx"
CIRCUIT_BREAKER: Final = "Circuit breaker, shared state (Lambda)"
PAUSE_WHILE_OPEN: Final = "Pause the queue while open"
CLOSE_FAST: Final = "Close fast, resume gently (canary probe, capped interval, concurrency ramp)"
LOAD_SHEDDING: Final = (
    "Load shedding (fast 503 + Retry-After from the state: the circuit's next probe, or the backlog over "
    "the threshold at the measured drain rate; jittered, bounded)"
)
ASYNC_DECOUPLING: Final = "Async decoupling (202 + id)"
TIMEOUT_BUDGET: Final = "Timeout budget from remaining time"
DLQ_EVERYWHERE: Final = "DLQ on every queue, target and sink"
POISON_TO_DLQ: Final = "Poison message straight to the DLQ"
IDEMPOTENCY: Final = "Idempotency (request key)"
EXECUTIONS_NAMED: Final = "Executions named for idempotency"
STEP_FUNCTIONS_RETRY_CATCH: Final = "Step Functions per-task retry + catch"
FANOUT: Final = "EventBridge fan-out with target DLQs"
ALARMS: Final = "Alarms on throttles, DLQ, age, concurrency"
UPSTREAM_ERRORS: Final = "Upstream errors grouped by dependency"
# The alarm on the handlers' EMF upstream errors with the partner's dependency dimension.
UPSTREAM_ERRORS_ALARM: Final = "PartnerUpstreamErrors"
DLQ_REDRIVE: Final = "DLQ redrive (operator moves a DLQ back to its queue)"
ARCHIVE_REPLAY: Final = "Archive and replay"

# Every pattern a run can claim (tests check each is a row of docs/patterns.md).
PATTERNS: Final = (
    STORAGE_FIRST, REQUEST_VALIDATION, LOAD_LEVELING, BULKHEAD, BACKOFF, RETRY_AFTER, NO_4XX_RETRY,
    CIRCUIT_BREAKER, PAUSE_WHILE_OPEN, CLOSE_FAST, LOAD_SHEDDING, ASYNC_DECOUPLING, TIMEOUT_BUDGET,
    DLQ_EVERYWHERE, POISON_TO_DLQ, IDEMPOTENCY, EXECUTIONS_NAMED, STEP_FUNCTIONS_RETRY_CATCH, FANOUT, ALARMS,
    UPSTREAM_ERRORS, DLQ_REDRIVE, ARCHIVE_REPLAY,
)  # fmt: skip

# A status read shed while the circuit was open: 503 with a Retry-After.
SHED_STATUS = 503
# What the partner twin's 429s advise (delta-seconds), and the slack of reading two arrival times.
RETRY_AFTER_S = 1.0
CLOCK_SLACK_S = 0.01


def scenario_patterns(result: RunResult) -> dict[str, str]:
    """The patterns ``result`` shows, each with the evidence from the run."""
    found: dict[str, str] = {}
    accepted = result.accepted
    counts = result.counts()
    if accepted and counts["lost"] == 0 and counts["processed"] > 0:
        found[STORAGE_FIRST] = (
            f"{len(accepted)} orders accepted straight onto the queue (202 + messageId), "
            f"{counts['processed']} processed from it, none lost"
        )
        found[ASYNC_DECOUPLING] = f"every one of {len(accepted)} orders answered 202 with its message id"
    _load_leveling(result, found)
    _bulkhead(result, found)
    _retries(result, found)
    _circuit(result, found)
    _failures(result, found)
    # Shed while the circuit was open or a probe was out: a 503 that says when to come back.
    shed = [r for r in result.status_reads if r.status == SHED_STATUS and r.retry_after_s is not None]
    if shed:
        reasons = ", ".join(sorted({str(r.reason) for r in shed}))
        found[LOAD_SHEDDING] = (
            f"{len(shed)} GET /orders/{{id}} answered {SHED_STATUS} with Retry-After ({reasons}); "
            f"the slowest in {max(r.latency_ms or 0.0 for r in shed):.0f} ms"
        )
    resent = [m for m in accepted if m.origin == "api-retry"]
    if (
        resent
        and not result.duplicate_side_effects
        and all(result.charges.get(m.order_id, 0) <= 1 for m in resent)
    ):
        found[IDEMPOTENCY] = (
            f"{len(resent)} orders sent twice with the same Idempotency-Key, each charged once"
        )
    if result.alarms is not None and result.alarms.fired():
        found[ALARMS] = "the template's alarms went to ALARM: " + ", ".join(sorted(result.alarms.fired()))
    upstream = result.alarms.seen.get(UPSTREAM_ERRORS_ALARM) if result.alarms is not None else None
    if upstream is not None and upstream.breaching_periods:
        found[UPSTREAM_ERRORS] = (
            f"{UPSTREAM_ERRORS_ALARM} (the handlers' EMF upstream errors, dependency=partner) breached in "
            f"{upstream.breaching_periods} period(s)"
        )
    return found


def _load_leveling(result: RunResult, found: dict[str, str]) -> None:
    if result.fault_window is None or not result.drained:
        return
    start, end = result.fault_window
    before = result.peak_depth(0, start)
    during = result.peak_depth(start, end + result.visibility_timeout_s)
    if during > before:
        found[LOAD_LEVELING] = (
            f"the order queue held up to {during} messages during the fault (at most {before} before) "
            "and drained after it"
        )


def _bulkhead(result: RunResult, found: dict[str, str]) -> None:
    if result.peak_consumer_in_flight == result.cap > 0:
        found[BULKHEAD] = (
            f"busy consumers reached the cap of {result.cap}, never more; the queue held the rest"
        )


def _calls_by_key(result: RunResult) -> dict[str, list[tuple[float, int]]]:
    by_key: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for call in result.calls:
        if call.idempotency_key:
            by_key[call.idempotency_key].append((call.t, call.status))
    return by_key


def _retries(result: RunResult, found: dict[str, str]) -> None:
    by_key = _calls_by_key(result)
    retried = [
        calls
        for calls in by_key.values()
        if len(calls) > 1 and calls[0][1] >= 500 and any(200 <= status < 300 for _, status in calls)
    ]
    if retried:
        longest = max(b[0] - a[0] for calls in retried for a, b in itertools.pairwise(calls))
        found[BACKOFF] = (
            f"{len(retried)} orders failed with a 5xx, were retried and charged; the longest wait between "
            f"two attempts of one order was {longest:.1f}s"
        )
    # After a 429 the next attempt at the same order waited at least the advice (the twin says 1 s).
    # An order its client sent twice (same key) is two deliveries: the second may be called right after
    # the first's 429 without being a retry of it (idempotency, not Retry-After, governs those), so only
    # orders sent once are judged.
    resent = {key for key, n in Counter(m.idempotency_key for m in result.accepted).items() if n > 1}
    gaps = [
        b[0] - a[0]
        for key, calls in by_key.items()
        if key not in resent
        for a, b in itertools.pairwise(calls)
        if a[1] == 429
    ]
    if gaps and min(gaps) >= RETRY_AFTER_S - CLOCK_SLACK_S:
        found[RETRY_AFTER] = (
            f"{len(gaps)} attempts followed a 429 with Retry-After: 1; the soonest came {min(gaps):.1f}s later"
        )
    if result.attempt_timeout_ms != float("inf"):
        slow = [c for c in result.calls if c.latency_ms > result.attempt_timeout_ms]
        # A timeout the host's stall explains (it would have fit without the stalled time) is the local
        # cloud's, not the consumer's time accounting: named, not counted.
        own = result.consumer_timeouts - result.consumer_timeouts_from_stalls
        if slow and own == 0:
            stalled = (
                f" (except {result.consumer_timeouts_from_stalls} that would have fit but for a stall of "
                f"this process, up to {result.longest_host_stall_s:.1f}s)"
                if result.consumer_timeouts_from_stalls
                else ""
            )
            found[TIMEOUT_BUDGET] = (
                f"{len(slow)} partner calls took longer than the {result.attempt_timeout_ms:.0f} ms attempt "
                f"timeout; no consumer invocation timed out{stalled}"
            )


def _circuit(result: RunResult, found: dict[str, str]) -> None:
    opened = result.circuit_opened_during_fault()
    if opened is None:
        return
    found[CIRCUIT_BREAKER] = (
        f"the shared circuit record went OPEN {opened:.1f}s into the run, during the fault"
    )
    paused = [s for s in result.samples if not s.consumer_enabled]
    if paused:
        found[PAUSE_WHILE_OPEN] = (
            f"the order queue's event source was disabled from {paused[0].t:.1f}s to {paused[-1].t:.1f}s "
            "while the circuit was open"
        )
    closed = result.circuit_closed_after_recovery()
    if closed is not None and paused and paused[-1].t <= result.ended_s:
        found[CLOSE_FAST] = f"the circuit was CLOSED again {closed:.1f}s after the partner recovered"


def _failures(result: RunResult, found: dict[str, str]) -> None:
    reasons = result.dlq_ids
    quarantined = {reason for reason in reasons.values() if reason != "max_receive_count"}
    if quarantined:
        found[POISON_TO_DLQ] = "quarantined in the DLQ without retries: " + ", ".join(sorted(quarantined))
        found[DLQ_EVERYWHERE] = f"{len(reasons)} messages that could not succeed kept in the order DLQ"
    rejected = [m for m in result.messages if m.note == "rejected by partner"]
    by_key = _calls_by_key(result)
    if rejected and all(len(by_key.get(m.idempotency_key, [])) == 1 for m in rejected):
        found[NO_4XX_RETRY] = "the order the partner answered 422 was called once, not retried"
