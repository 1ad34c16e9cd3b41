"""The long outage end to end: the partner answers 503 for longer than the orders queue lets a message
fail (maxReceiveCount x visibility timeout), under steady load, then recovers.

It runs in its own background process (tests/e2e/support.py, ``LONG_SCENARIOS``) beside the other fault
scenarios. What it proves: a dependency's outage of any length is only a delay (nothing reaches a DLQ,
everything is charged once after the recovery), and the alarms an operator relies on in a real outage
fire, evaluated from the template's own definitions over what the run emitted (localcloud.alarms):
these need three one-minute periods in a row, or five minutes of queue age, which a short outage never
reaches.
"""

from __future__ import annotations

from typing import Any

from tests.e2e.support import FaultRuns
from tests.e2e.test_scenarios import (
    assert_breaker_opened_and_closed,
    assert_conservation,
    assert_the_queue_absorbed_the_fault,
)

# The alarms a long outage must raise: an attempt failed in each of 3 periods in a row (the probes keep
# failing while the circuit is open), the circuit is open, the oldest order waited past its threshold,
# and the composite that pages for all of them.
OUTAGE_ALARMS = ("PartnerUpstreamErrors", "PartnerCircuitOpen", "OrdersQueueAge", "PipelineDegraded")


def _long_outage(long_runs: FaultRuns) -> dict[str, Any]:
    return long_runs.result("long-outage")


def test_an_outage_longer_than_the_receive_budget_ends_in_no_dlq(long_runs: FaultRuns) -> None:
    run = _long_outage(long_runs)
    start, recovered = run["fault_window"]
    # The outage really outlasted the receive budget: a consumer that let each receive fail would have
    # walked every message accepted in its first minutes into the DLQ.
    assert recovered - start > run["max_receive_count"] * run["visibility_timeout_s"], run["report"]
    summary = assert_conservation(run)
    assert summary["in_dlq"] == 0, run["report"]
    assert_breaker_opened_and_closed(run)
    assert_the_queue_absorbed_the_fault(run)
    # Orders kept arriving through the whole outage, and every one of them was charged after it.
    accepted_while_down = [m for m in run["messages"] if start <= m["t"] < recovered]
    assert accepted_while_down and all(m["outcome"] == "processed" for m in accepted_while_down)


def test_a_long_outage_fires_the_outage_alarms_and_they_clear(long_runs: FaultRuns) -> None:
    run = _long_outage(long_runs)
    alarms = run["alarms"]
    start, recovered = run["fault_window"]
    for name in OUTAGE_ALARMS:
        windows = alarms["fired"].get(name)
        assert windows, f"{name} never went to ALARM\n{run['report']}"
        # Each went to ALARM because of the outage: during it, not before.
        assert start <= windows[0][0] < recovered, f"{name}: {windows}\n{run['report']}"
    # The circuit alarm says the truth for the whole outage: in ALARM from the first minutes until the
    # partner recovered, also while the paused consumer made no calls (the controller's failed probes).
    [(went, cleared)] = alarms["fired"]["PartnerCircuitOpen"]
    assert went < start + (recovered - start) / 4 and cleared is not None and cleared >= recovered, run[
        "report"
    ]
    # The partner is back: its circuit and upstream-error alarms are OK again by the end of the run.
    for name in ("PartnerUpstreamErrors", "PartnerCircuitOpen"):
        assert alarms["fired"][name][-1][1] is not None, f"{name} still in ALARM\n{run['report']}"
