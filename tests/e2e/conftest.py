"""Shared fixtures of the end-to-end tests: local clouds on the session's compressed synth (``compressed``).

Every test in this folder is marked ``e2e``. The synthesized template is the real one
(``stacks.application.build_app``), built from cdk.json's context with the stage's time settings
divided by ``COMPRESS`` (localcloud.scenarios.compressed_context), or less on a machine too slow for it
(localcloud.calibration): at /10 the consumer's timeout becomes 3 s, so the order queue's visibility
timeout is 19 s, and a scenario that makes messages fail still drains
within about half a minute.

The fault scenarios (test_scenarios.py) take most of the time, mostly waiting out visibility timeouts.
When the session selected them, they start right after the synth in one background process, one per
session also under xdist (the first worker to claim the shared directory starts it)
(``python -m localcloud.demo --scenario outage,throttling,slow,brownout --synthesized ...``, i.e.
``make demo`` on the session's template) and use the second core while the other e2e tests run here; the scenario
tests then assert on the accounts it wrote (``--json-dir``). The long outage (test_long_outage.py) lasts
longer than all of them together, mostly waiting with the consumer paused: it runs in a second background
process beside them (``long_runs``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud.deploy import DeployedStack, Synthesized, deploy
from localcloud.emulator import Emulator
from tests.e2e.support import (
    FAULT_SCENARIOS,
    LONG_LOAD_SHARE,
    LONG_SCENARIOS,
    Compressed,
    FaultRuns,
    shared_temp,
)

E2E_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(E2E_DIR):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def synthesized(compressed: Compressed) -> Synthesized:
    return compressed.synthesized


@pytest.fixture(scope="module")
def deployed(synthesized: Synthesized) -> Iterator[DeployedStack]:
    """The stack deployed into a fresh emulator, with nothing running on it (no pollers)."""
    with Emulator() as emulator:
        yield deploy(emulator, synthesized)


def _runner_in_background(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    reader: str,
    folder: str,
    names: tuple[str, ...],
    **options: Any,
) -> Iterator[FaultRuns | None]:
    """Start ``names`` in the background when a selected test takes the ``reader`` fixture."""
    wanted = any(reader in getattr(item, "fixturenames", ()) for item in request.session.items)
    if not wanted:
        yield None
        return
    # One runner for the whole session: under xdist the workers share the base temp's parent.
    directory = shared_temp(tmp_path_factory) / folder
    try:
        directory.mkdir()  # atomic: exactly one worker gets to start the runner
    except FileExistsError:
        yield FaultRuns.attach(directory)
        return
    runs = FaultRuns.start(request.getfixturevalue("compressed"), directory, names, **options)
    try:
        yield runs
    finally:
        runs.stop()


@pytest.fixture(scope="session", autouse=True)
def fault_scenarios_in_background(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultRuns | None]:
    yield from _runner_in_background(
        request, tmp_path_factory, "fault_runs", "fault-scenarios", FAULT_SCENARIOS
    )


@pytest.fixture(scope="session", autouse=True)
def long_scenarios_in_background(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultRuns | None]:
    yield from _runner_in_background(
        request,
        tmp_path_factory,
        "long_runs",
        "long-scenarios",
        LONG_SCENARIOS,
        load_share=LONG_LOAD_SHARE,
        tour=False,
    )


@pytest.fixture(scope="session")
def fault_runs(fault_scenarios_in_background: FaultRuns | None) -> FaultRuns:
    assert fault_scenarios_in_background is not None
    return fault_scenarios_in_background


@pytest.fixture(scope="session")
def long_runs(long_scenarios_in_background: FaultRuns | None) -> FaultRuns:
    assert long_scenarios_in_background is not None
    return long_scenarios_in_background
