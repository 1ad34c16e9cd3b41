"""Fault scenarios end to end, time-compressed: steady load through the front door while the partner fails.

The fault scenarios run through ``localcloud.demo`` (what ``make demo`` runs) in a background process
that the e2e session starts early (tests/e2e/conftest.py); these tests assert on the account each run
wrote. The poison scenario runs in this process, on a local cloud the test then queries through the
front door.

Every scenario checks conservation first: every accepted message was processed exactly once (its order
charged once at the partner) or sits in a DLQ; nothing lost, nothing charged twice. Then what the
scenario is about.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import urllib.parse
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import requests

from localcloud.cloud import LocalCloud
from localcloud.front_door import producer_auth
from localcloud.report import result_document
from localcloud.scenarios import MIN_ORDERS_WHILE_OPEN, RunResult, ScenarioRun
from tests.catalogue import claims
from tests.conftest import cdk_context
from tests.e2e.support import FAULT_SCENARIOS, Compressed, FaultRuns

PARTNER = cdk_context()["service"]["dependencies"]["partner"]
MAX_ATTEMPTS = PARTNER["max_attempts"]
THRESHOLD = PARTNER["breaker_failure_threshold"]


def assert_conservation(run: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = run["summary"]
    assert run["drained"], run["report"]
    assert summary["accepted"] > 0
    assert summary["lost"] == 0, run["report"]
    assert summary["still_queued"] == 0
    assert summary["charged_and_in_dlq"] == 0
    assert summary["duplicate_side_effects"] == 0, run["report"]
    assert {m["outcome"] for m in run["messages"]} <= {"processed", "dlq"}
    # An order is charged once however often it was sent (client retries with the same key).
    for message in run["messages"]:
        if message["outcome"] == "processed":
            assert run["charges"][message["order_id"]] == 1
    return summary


def assert_breaker_opened_and_closed(run: dict[str, Any]) -> None:
    """The consumer's breaker opened during the fault, and the circuit record is CLOSED again after it.

    Opening is logged by the consumer; closing may be done by the consumer (probe succeeded) or by the
    circuit-controller workflow, which writes the record directly: that is read from the sampled record.
    """
    fault_start, recovered = run["fault_window"]
    changes = [(t["from"], t["to"]) for t in run["transitions"]]
    assert ("CLOSED", "OPEN") in changes, run["report"]
    opened = next(t["t"] for t in run["transitions"] if (t["from"], t["to"]) == ("CLOSED", "OPEN"))
    assert fault_start <= opened < recovered
    record = run["record_transitions"]
    assert any(t["to"] == "OPEN" and fault_start <= t["t"] for t in record), run["report"]
    assert record[-1]["to"] == "CLOSED" and record[-1]["t"] >= recovered, run["report"]
    assert run["final_circuit"] == "CLOSED"


def assert_the_queue_absorbed_the_fault(run: dict[str, Any]) -> None:
    """Messages waited in the queue; the partner was not hammered while it was down.

    Judged on counts, not on how fast this machine is: before the circuit opened, each of the ``cap``
    consumer environments can fail at most ``threshold`` logical calls of ``max_attempts`` attempts
    before its own breaker trips (a shared opening stops them sooner); once it opened, the partner saw
    only probes while the messages accepted meanwhile waited in the queue.
    """
    summary = run["summary"]
    assert summary["in_dlq"] == 0, run["report"]  # nothing gave up: all processed after recovery
    assert summary["peak_queue_depth_during_fault"] > summary["peak_queue_depth_before_fault"]
    fault_start, recovered = run["fault_window"]
    opened = next(t["t"] for t in run["record_transitions"] if t["to"] == "OPEN" and t["t"] >= fault_start)
    failed_before = [c for c in run["calls"] if fault_start <= c["t"] < opened and failed_call_record(c, run)]
    assert len(failed_before) <= run["cap"] * THRESHOLD * MAX_ATTEMPTS, run["report"]
    calls_while_open = [c for c in run["calls"] if opened <= c["t"] < recovered]
    waiting = [m for m in run["messages"] if opened <= m["t"] < recovered and m["origin"] != "direct"]
    assert len(waiting) >= MIN_ORDERS_WHILE_OPEN, run["report"]
    assert len(calls_while_open) / len(waiting) < 0.5, run["report"]


def failed_call_record(call: dict[str, Any], run: dict[str, Any]) -> bool:
    """As the consumer saw it: an error, no answer, or slower than its attempt timeout."""
    return call["status"] >= 400 or call["status"] == 0 or call["latency_ms"] > run["attempt_timeout_ms"]


@contextlib.contextmanager
def run_in_process(compressed: Compressed, name: str) -> Iterator[tuple[LocalCloud, RunResult]]:
    """Scenario ``name`` on a local cloud of this process, which stays up for the test's own queries."""
    with LocalCloud(compressed.synthesized, seed=11) as cloud:
        scenario = compressed.scenarios()[name]
        yield (
            cloud,
            ScenarioRun(
                cloud, scenario, overrides=compressed.overrides, seed=11, alarm_factor=compressed.factor
            ).run(),
        )


def test_poison_messages_go_straight_to_the_dlq(compressed: Compressed) -> None:
    with run_in_process(compressed, "poison") as (cloud, result):
        run = result_document(result)
        summary = assert_conservation(run)
        poison = {m["note"]: m for m in run["messages"] if m["note"]}
        assert set(poison) == {"reused key", "malformed", "rejected by partner"}
        assert run["dlq"][poison["malformed"]["message_id"]] == "invalid_json"
        assert run["dlq"][poison["rejected by partner"]["message_id"]] == "rejected_by_dependency"
        assert summary["in_dlq"] == 3
        assert summary["in_dlq"] + summary["processed"] == len(run["messages"])
        # Two different orders under one Idempotency-Key: whichever is delivered first is charged, the
        # other is quarantined (SQS does not keep order, so either may win). A client's resend of the
        # first (same order, same key; which order is resent depends on timing) is absorbed, not poison.
        sharing = [
            m
            for m in run["messages"]
            if m["key"] == poison["reused key"]["key"] and m["origin"] != "api-retry"
        ]
        assert len(sharing) == 2 and len({m["order_id"] for m in sharing}) == 2
        charged = [m for m in sharing if run["charges"].get(m["order_id"], 0) == 1]
        quarantined = [m for m in sharing if run["dlq"].get(m["message_id"]) == "idempotency_key_reused"]
        assert len(charged) == len(quarantined) == 1 and charged[0] is not quarantined[0]
        original = charged[0]
        assert run["transitions"] == []  # poison never trips the breaker: a 4xx is not the partner failing
        # A healthy partner: the only alarms are the ones the poison explains (messages in the DLQ).
        alarms = run["alarms"]
        assert "OrdersDlqDepth" in alarms["fired"], run["report"]
        assert set(alarms["fired"]) <= {"OrdersDlqDepth", "PipelineDegraded"}, run["report"]
        # docs/patterns.md names `poison` only for what this run recorded.
        assert claims("poison") <= set(run["patterns"]), run["report"]

        # GET /orders/{id} (Lambda proxy integration) reads what the consumer recorded.
        assert cloud.front_door is not None
        base = cloud.front_door.base_url
        signed = producer_auth(cloud.emulator.region)
        status = requests.get(f"{base}orders/{original['order_id']}", auth=signed, timeout=10)
        assert status.status_code == 200, status.text
        assert status.json()["orderId"] == original["order_id"]
        assert requests.get(f"{base}orders/never-placed", auth=signed, timeout=10).status_code == 404
        assert requests.get(f"{base}orders/not%20an%20id", auth=signed, timeout=10).status_code == 400

        urls = [cloud.emulator.endpoint_url, base, *(twin.base_url for twin in cloud.dependencies.values())]
    # Everything listened on 127.0.0.1 only, and every port is free again once the cloud stopped.
    for url in urls:
        parsed = urllib.parse.urlsplit(url)
        assert parsed.hostname == "127.0.0.1"
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", parsed.port or 0))  # raises if something still listens there


def test_a_healthy_run_fires_no_alarm(compressed: Compressed) -> None:
    """Steady load on a healthy partner, longer than every alarm's evaluation window: the template's alarms,
    evaluated over what the run emitted, all stay quiet (an alarm that fires here would page for nothing)."""
    with run_in_process(compressed, "healthy") as (_, result):
        run = result_document(result)
    summary = assert_conservation(run)
    assert summary["in_dlq"] == 0 and run["transitions"] == []
    alarms = run["alarms"]
    assert alarms["fired"] == {}, run["report"]
    # They were judged, not skipped: the run covered the longest window (3 periods of a minute / factor).
    assert result.ended_s >= 3 * 60 / compressed.factor
    assert alarms["evaluated"] >= 50, run["report"]


def test_outage(fault_runs: FaultRuns) -> None:
    run = fault_runs.result("outage")
    assert_conservation(run)
    assert_breaker_opened_and_closed(run)
    assert_the_queue_absorbed_the_fault(run)
    assert run["peak_dependency_in_flight"] <= run["cap"]  # fast 503s: the bulkhead is the bound
    assert run["peak_consumer_in_flight"] <= run["cap"]
    start, end = run["fault_window"]
    assert {c["status"] for c in run["calls"] if start <= c["t"] < end} <= {503, 201}


def test_the_outage_fires_the_circuit_alarm_and_the_pipeline_composite(fault_runs: FaultRuns) -> None:
    """The template's alarms, evaluated over what the run emitted (localcloud.alarms): the circuit-open
    alarm and the composite go to ALARM during the fault; the circuit alarm is back to OK after it, the
    composite too unless a signal of its (the queue's age while draining) still is in ALARM.

    The upstream-error, failure-rate and queue-age alarms need 3 of 3 one-minute periods: this outage
    lasts about one nominal minute, so they see it (a breaching period) without firing, as in the cloud.
    """
    run = fault_runs.result("outage")
    alarms = run["alarms"]
    fault_start, _ = run["fault_window"]
    for name in ("PartnerCircuitOpen", "PipelineDegraded"):
        windows = alarms["fired"].get(name)
        assert windows, run["report"]
        assert windows[0][0] >= fault_start, run["report"]
    circuit = alarms["fired"]["PartnerCircuitOpen"]
    assert circuit[-1][1] is not None, f"PartnerCircuitOpen still in ALARM at the end\n{run['report']}"
    # The composite is back to OK unless one of its signals still is in ALARM: the queue's age can still
    # be over its threshold while the backlog drains, for as long as the machine takes to drain it.
    still = [n for n, w in alarms["fired"].items() if n != "PipelineDegraded" and w[-1][1] is None]
    assert alarms["fired"]["PipelineDegraded"][-1][1] is not None or still, run["report"]
    assert alarms["seen"]["PartnerUpstreamErrors"]["breaching_periods"] >= 1, run["report"]
    assert alarms["seen"]["OrdersQueueAge"]["peak"] > 0, run["report"]
    assert "PartnerCircuitOpen" in run["report"]


def test_status_reads_are_shed_with_advice_the_circuit_state_bounds(fault_runs: FaultRuns) -> None:
    """A client polling GET /orders/{id} through the outage: every 503 says why and when to come back,
    never later than the circuit's recovery window (the probe is due by then)."""
    run = fault_runs.result("outage")
    reads = run["status_reads"]
    # 404: an order accepted at the front door that no consumer has received yet has no status record.
    assert reads and {r["status"] for r in reads} <= {200, 404, 503}, reads
    for read in (r for r in reads if r["status"] == 503):
        # These runs never back the queue up to the threshold; a busy machine can make the status read
        # itself miss its budget (status_unavailable, a short fixed advice).
        # A read that lands while a probe is out sees the circuit HALF_OPEN: shed the same way, with the
        # same bound (the probe's answer is due within the recovery window).
        assert read["reason"] in ("circuit_open", "circuit_half_open", "status_unavailable"), read
        assert read["retry_after_s"] >= 1, read
        if read["reason"] in ("circuit_open", "circuit_half_open"):
            assert read["retry_after_s"] <= run["breaker_recovery_s"], read


def test_throttling_dependency(fault_runs: FaultRuns) -> None:
    run = fault_runs.result("throttling")
    assert_conservation(run)
    assert_breaker_opened_and_closed(run)
    assert_the_queue_absorbed_the_fault(run)
    # Retry-After: 1 is honoured: a key's next attempt after a 429 comes no sooner than a second later.
    # (Keys sent twice by the client are left out: their two deliveries may run side by side.)
    single = {m["key"] for m in run["messages"] if m["messages_with_key"] == 1}
    by_key = defaultdict(list)
    for call in sorted(run["calls"], key=lambda c: c["t"]):
        if call["key"] in single:
            by_key[call["key"]].append(call)
    gaps = [
        later["t"] - earlier["t"]
        for calls in by_key.values()
        for earlier, later in itertools.pairwise(calls)
        if earlier["status"] == 429
    ]
    assert gaps, "no key was retried after a 429"
    assert min(gaps) >= 0.9


def test_slow_dependency(fault_runs: FaultRuns) -> None:
    run = fault_runs.result("slow")
    assert_conservation(run)
    assert_breaker_opened_and_closed(run)
    assert_the_queue_absorbed_the_fault(run)
    # The consumer stays inside its bulkhead while requests it gave up on (attempt timeout) pile up at the
    # slow partner: the client's timeouts, not the partner's latency, bound how long the consumer waits.
    assert run["peak_consumer_in_flight"] <= run["cap"]
    assert run["peak_dependency_in_flight"] > run["cap"]


def test_a_brownout_costs_retries_never_a_message(fault_runs: FaultRuns) -> None:
    """Half of the partner's answers fail: retries in the call and backed-off redeliveries absorb it."""
    run = fault_runs.result("brownout")
    summary = assert_conservation(run)
    assert summary["in_dlq"] == 0, run["report"]
    start, end = run["fault_window"]
    during = [c for c in run["calls"] if start <= c["t"] < end]
    failed = [c for c in during if c["status"] == 503]
    # The fault took effect, and as a brown-out: each answer fails with p = 0.5, over some 30 calls, so
    # the share is judged 4 standard deviations wide (a 0.3-0.7 band failed a quiet run at 8 of 28).
    sigma = (0.25 / max(1, len(during))) ** 0.5
    assert during and abs(len(failed) / len(during) - 0.5) < 4 * sigma, run["report"]
    assert run["final_circuit"] == "CLOSED"


def test_the_demo_judges_every_run_ok_and_exits_cleanly(fault_runs: FaultRuns) -> None:
    """The demo's verdict and exit status: nothing lost or charged twice, every queue drained."""
    for name in FAULT_SCENARIOS:
        assert fault_runs.result(name)["ok"], fault_runs.log()
        assert (fault_runs.directory / f"{name}-report.txt").read_text().startswith("\n=== scenario")
    assert fault_runs.exit_status() == 0, fault_runs.log()
