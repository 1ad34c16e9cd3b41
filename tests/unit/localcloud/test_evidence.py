"""A run claims a catalogue pattern only with evidence from what it recorded, and the names are the catalogue's."""

from __future__ import annotations

import dataclasses
import re

from localcloud import evidence
from localcloud.fault_dependency import CallRecord
from localcloud.scenarios import Sample, SentMessage, StatusRead, Transition
from localcloud.tour import status_reads_part
from tests.catalogue import rows
from tests.unit.localcloud.runs import run_result, sample


def call(t: float, status: int, key: str = "k1", latency_ms: float = 5.0) -> CallRecord:
    return CallRecord(t, "POST", "/charges", status, latency_ms, "p", key, None, 200 <= status < 300)


def sent(t: float, order: str, origin: str = "api", note: str = "") -> SentMessage:
    return SentMessage(t, order, f"k-{order}", f"m-{order}", origin, note)


def test_every_pattern_a_run_can_claim_is_a_row_of_the_catalogue() -> None:
    catalogue = {row.pattern for row in rows()}
    assert set(evidence.PATTERNS) <= catalogue, set(evidence.PATTERNS) - catalogue


def test_a_quiet_run_claims_nothing_it_did_not_record() -> None:
    assert evidence.scenario_patterns(run_result(peak_consumer_in_flight=1)) == {}


def test_an_outage_claims_what_its_samples_calls_and_reads_show() -> None:
    scenario = run_result().scenario
    assert scenario.fault_window is not None
    start, end = scenario.fault_window

    def state(t: float) -> str:
        return "OPEN" if start + 1 <= t < end + 1 else "CLOSED"

    samples = [
        dataclasses.replace(
            sample(t, depth=30 if start <= t < end else 2, circuit=state(t)),
            consumer_enabled=not (start + 1.5 <= t < end),
        )
        for t in range(60)
    ]
    messages = [sent(1.0, "o1"), sent(1.2, "o1", origin="api-retry"), sent(2.0, "o2")]
    calls = [call(start, 503, "k-o1"), call(start + 4, 201, "k-o1"), call(3.0, 201, "k-o2")]
    reads = [StatusRead(start + 2, 503, 3.0, "circuit_open", 12.0), StatusRead(end + 5, 200)]
    result = run_result(
        samples=samples,
        messages=messages,
        calls=calls,
        charges={"o1": 1, "o2": 1},
        status_reads=reads,
        transitions=[Transition(start + 1, "CLOSED", "OPEN")],
        fault_window=(start, end),
    )

    found = evidence.scenario_patterns(result)

    assert set(found) == {
        evidence.STORAGE_FIRST,
        evidence.ASYNC_DECOUPLING,
        evidence.LOAD_LEVELING,
        evidence.BULKHEAD,
        evidence.BACKOFF,
        evidence.CIRCUIT_BREAKER,
        evidence.PAUSE_WHILE_OPEN,
        evidence.CLOSE_FAST,
        evidence.LOAD_SHEDDING,
        evidence.IDEMPOTENCY,
    }
    assert "went OPEN" in found[evidence.CIRCUIT_BREAKER]
    assert "1 orders failed with a 5xx" in found[evidence.BACKOFF]


def test_a_second_delivery_of_a_resent_order_is_not_a_hurried_retry() -> None:
    """A client's resend (same key) is its own delivery: called right after the first one's 429, it says
    nothing about Retry-After. The order sent once still waited for it."""
    resent = [sent(0.5, "o1"), sent(0.6, "o1", origin="api-retry"), sent(0.7, "o2")]
    calls = [call(1.0, 429, key="k-o1"), call(1.1, 201, key="k-o1"), call(1.0, 429, key="k-o2")]
    calls.append(call(2.1, 201, key="k-o2"))
    assert evidence.RETRY_AFTER in evidence.scenario_patterns(run_result(calls=calls, messages=resent))
    once = [sent(0.5, "o1"), sent(0.7, "o2")]
    assert evidence.RETRY_AFTER not in evidence.scenario_patterns(run_result(calls=calls, messages=once))


def test_a_429_claims_retry_after_only_when_the_next_attempt_waited_for_it() -> None:
    waited = run_result(calls=[call(1.0, 429), call(2.2, 201)])
    hurried = run_result(calls=[call(1.0, 429), call(1.3, 201)])
    assert evidence.RETRY_AFTER in evidence.scenario_patterns(waited)
    assert evidence.RETRY_AFTER not in evidence.scenario_patterns(hurried)


def test_poison_claims_quarantine_and_no_4xx_retry_from_the_dlq_and_the_calls() -> None:
    rejected = sent(2.0, "o9", note="rejected by partner")
    dlq = [
        {"MessageId": "d1", "MessageAttributes": {"SourceMessageId": {"StringValue": "m-o9"}, "QuarantineReason": {"StringValue": "rejected_by_dependency"}}},
    ]  # fmt: skip
    result = run_result(messages=[rejected], dlq_messages=dlq, calls=[call(2.1, 422, "k-o9")])
    found = evidence.scenario_patterns(result)
    assert {evidence.POISON_TO_DLQ, evidence.DLQ_EVERYWHERE, evidence.NO_4XX_RETRY} <= set(found)
    retried = run_result(messages=[rejected], dlq_messages=dlq, calls=[call(2.1, 422, "k-o9")] * 2)
    assert evidence.NO_4XX_RETRY not in evidence.scenario_patterns(retried)


def test_the_status_part_counts_reads_until_the_circuit_closed_and_the_answers_after() -> None:
    scenario = run_result().scenario
    assert scenario.fault_window is not None
    start, end = scenario.fault_window
    samples: list[Sample] = [
        sample(t / 4, circuit="OPEN" if start * 4 <= t < (end + 2) * 4 else "CLOSED") for t in range(240)
    ]
    reads = [
        StatusRead(start + 1, 503, 4.0, "circuit_open", 8.0),
        StatusRead(end + 1, 503, 1.0, "circuit_open", 6.0),
        StatusRead(end + 4, 200),
    ]
    part = status_reads_part(run_result(samples=samples, status_reads=reads, fault_window=(start, end)))
    assert part.ok
    text = "\n".join(part.lines)
    assert "2 read(s) from the fault until the circuit closed" in text
    assert re.search(r"2 shed: 503 \+ Retry-After \(median \d+s\), answered within 8 ms", text)
    assert "1 read(s) after it (200: 1)" in text


def test_the_timeout_budget_is_claimed_only_without_a_timeout_of_the_consumers_own() -> None:
    slow = [call(1.0, 504, latency_ms=1500.0)]  # past the 1000 ms attempt timeout

    def claimed(**fields: int | float) -> str | None:
        return evidence.scenario_patterns(run_result(calls=slow, **fields)).get(evidence.TIMEOUT_BUDGET)

    assert claimed() is not None
    assert claimed(consumer_timeouts=1) is None
    # One the host's stall explains (localcloud/host_stalls.py) is named, not counted; one more is not.
    excused = claimed(consumer_timeouts=1, consumer_timeouts_from_stalls=1, longest_host_stall_s=3.0)
    assert excused is not None and "but for a stall of this process, up to 3.0s" in excused
    assert claimed(consumer_timeouts=2, consumer_timeouts_from_stalls=1, longest_host_stall_s=3.0) is None
