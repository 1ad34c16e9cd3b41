"""``python -m bench --scenario``: a subset of the full run, in its order, with its settings."""

from __future__ import annotations

import pytest

from bench.__main__ import NEIGHBOUR_POOL, SCENARIOS, _arguments, plan_of
from localcloud.scenarios import scenarios


def test_without_a_subset_the_full_run_plays_every_scenario_and_quick_only_the_outage() -> None:
    catalogue = scenarios(0.2)
    assert [label for label, _, _ in plan_of(catalogue)] == list(SCENARIOS)
    assert [label for label, _, _ in plan_of(catalogue, quick=True)] == ["outage"]
    assert _arguments([]).scenario is None


def test_a_subset_runs_in_the_full_runs_order_with_the_same_scenarios_and_pools() -> None:
    catalogue = scenarios(0.2)
    only = _arguments(["--scenario", "noisy-neighbour, outage,slow"]).scenario
    plan = plan_of(catalogue, only=only)
    full = {label: (scenario, pool) for label, scenario, pool in plan_of(catalogue)}
    assert [label for label, _, _ in plan] == ["outage", "slow", "noisy-neighbour"]
    assert all(full[label] == (scenario, pool) for label, scenario, pool in plan)
    neighbour = plan[-1]
    assert neighbour[1].name == "noisy-neighbour"
    assert neighbour[1].phases == catalogue["slow"].phases
    assert neighbour[2] == NEIGHBOUR_POOL


@pytest.mark.parametrize("value", ["slwo", "outage,nope", ",", ""])
def test_an_unknown_or_empty_scenario_name_is_refused(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _arguments(["--scenario", value])
    assert "choose from outage, slow" in capsys.readouterr().err
