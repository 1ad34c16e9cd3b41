"""The tour ``make demo`` runs after its scenarios, and docs/patterns.md's demo column against the runs.

Both read what the session's background runner wrote (tests/e2e/conftest.py): the fault scenarios and
then the tour on the same local cloud, each with the patterns it recorded evidence for
(``localcloud/evidence.py``, ``localcloud/tour.py``). Nothing runs here.
"""

from __future__ import annotations

from typing import Any

import pytest

from localcloud import evidence
from tests.catalogue import claims
from tests.e2e.support import FAULT_SCENARIOS, FaultRuns


def _part(tour: dict[str, Any], starts: str) -> dict[str, Any]:
    part = next((p for p in tour["parts"] if p["title"].startswith(starts)), None)
    assert part is not None, f"no part {starts!r}:\n{tour['report']}"
    return part


def test_the_tour_shows_events_workflows_a_failing_subscriber_and_the_operators_redrive(
    fault_runs: FaultRuns,
) -> None:
    tour = fault_runs.result("tour")
    assert tour["ok"], tour["report"]
    for title in (
        "events",
        "fulfilment",
        "a failing event subscriber",
        "the operator's redrive",
        "the operator's replay",
    ):
        assert _part(tour, title)["ok"], tour["report"]
    # The workflow retried through 503s charged its order once, and its replay did not charge it again;
    # the one the partner rejected was charged by its replay, once.
    assert sorted(tour["charges"].values()) == [1, 1], tour["report"]
    # The redriven notification (and every other one) was sent once.
    assert tour["notifications_sent"] and set(tour["notifications_sent"].values()) == {1}, tour["report"]
    redrive = "\n".join(_part(tour, "the operator's redrive")["lines"])
    assert "COMPLETED, moved 1 message(s)" in redrive and "left in the DLQ: 0" in redrive
    assert {
        evidence.REQUEST_VALIDATION,
        evidence.FANOUT,
        evidence.EXECUTIONS_NAMED,
        evidence.STEP_FUNCTIONS_RETRY_CATCH,
        evidence.DLQ_REDRIVE,
        evidence.ARCHIVE_REPLAY,
    } <= set(tour["patterns"]), tour["report"]
    replay = "\n".join(_part(tour, "the operator's replay")["lines"])
    assert "COMPLETED to" in replay and "EventsFulfilmentRule" in replay, tour["report"]
    # What the local replay does differently from EventBridge is said, not hidden.
    assert any("asynchronously" in line for line in tour["not_emulated"])


def test_status_reads_while_the_partner_was_down_are_part_of_the_tour(fault_runs: FaultRuns) -> None:
    tour = fault_runs.result("tour")
    part = _part(tour, "GET /orders/{id} while the partner was down (scenario 'outage')")
    assert part["ok"], tour["report"]


@pytest.mark.parametrize("run", [*FAULT_SCENARIOS, "tour"])
def test_the_catalogue_names_only_what_the_run_recorded(fault_runs: FaultRuns, run: str) -> None:
    recorded = fault_runs.result(run)["patterns"]
    unshown = claims(run) - set(recorded)
    assert not unshown, (
        f"docs/patterns.md says `{run}` shows {sorted(unshown)}; the run recorded {sorted(recorded)}"
    )
