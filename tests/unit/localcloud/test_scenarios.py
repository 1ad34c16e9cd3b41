"""The scenario catalogue: what each fault script promises about its own timeline."""

from __future__ import annotations

import pytest

from localcloud.calibration import timeline_scale
from localcloud.scenarios import compressed_context, receive_budget_seconds, scenarios
from tests.conftest import cdk_context


@pytest.mark.parametrize("factor", [10, 9, 6, 4, 2])
def test_the_long_outage_outlasts_the_orders_queues_receive_budget(factor: float) -> None:
    context, _ = compressed_context({**cdk_context(), "stage": "dev"}, factor)
    orders = context["service"]["consumers"]["orders"]
    visibility = 6 * orders["timeout_seconds"] + orders["batching_window_seconds"]  # stacks/config.py
    assert receive_budget_seconds(context) == orders["max_receive_count"] * visibility

    long_outage = scenarios(timeline_scale(1.0, factor), receive_budget_s=receive_budget_seconds(context))[
        "long-outage"
    ]

    assert long_outage.fault_window is not None
    start, end = long_outage.fault_window
    # Every receive a message has could fail during it: only a design that stops receiving survives.
    assert end - start > receive_budget_seconds(context)
    assert long_outage.load_s > end  # orders keep arriving through the whole outage and after it


def test_a_brownout_is_not_stretched_waiting_for_a_circuit_it_should_not_open() -> None:
    catalogue = scenarios()
    assert catalogue["outage"].opens_circuit
    assert not catalogue["brownout"].opens_circuit
    assert catalogue["brownout"].fault_window == catalogue["outage"].fault_window
