"""The scheduled reconciler on moto: mappings, circuit records, locks and controller executions."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType

import pytest

from lambdas.contracts.circuit import lock_key
from lambdas.contracts.consumer_control import CONTROL_ENV
from lambdas.contracts.metrics import (
    DIMENSION_CONSUMER,
    METRIC_CONTROLLERS_RESTARTED,
    METRIC_PAUSED_SECONDS,
    METRIC_RESUMED,
    METRIC_STALE_LOCKS_CLEARED,
)
from lambdas.shared.env import ConfigurationError
from tests.unit.helpers import FakeLambdaContext, import_fresh, metric_points
from tests.unit.reconciler.world import World, build_world

HANDLER = "lambdas.reconciler.handler"


@pytest.fixture
def world(aws: None) -> World:
    return build_world()


@pytest.fixture
def reconciler(world: World, monkeypatch: pytest.MonkeyPatch) -> Callable[[], ModuleType]:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "resilient-orders")
    monkeypatch.setenv(CONTROL_ENV, world.control.model_dump_json())
    return lambda: import_fresh(HANDLER)


def value(point: dict, name: str) -> float:
    """A datapoint's value (Powertools writes a list when a metric is added in the handler's Metrics)."""
    raw = point[name]
    [single] = raw if isinstance(raw, list) else [raw]
    return float(single)


def invoke(module: ModuleType) -> dict:
    result: dict = module.handler({"source": "aws.events"}, FakeLambdaContext(function_name="reconciler"))
    return result


def test_disabled_with_the_circuit_closed_and_no_controller_is_resumed(
    world: World, reconciler: Callable[[], ModuleType], capsys: pytest.CaptureFixture[str]
) -> None:
    world.set_enabled("orders", False)
    world.circuit("partner", "CLOSED")

    result = invoke(reconciler())

    assert world.state("orders") == "Enabled"
    assert result["resumed"] == ["orders"]
    assert world.running() == []  # nothing to restart
    out = capsys.readouterr().out
    [resumed] = metric_points(out, METRIC_RESUMED)
    assert value(resumed, METRIC_RESUMED) == 1
    paused = {p[DIMENSION_CONSUMER]: p for p in metric_points(out, METRIC_PAUSED_SECONDS)}
    assert set(paused) == {"orders", "notifications"}
    assert paused["orders"]["_dimensions"] == {"service", DIMENSION_CONSUMER}


def test_disabled_without_any_circuit_record_is_resumed(
    world: World, reconciler: Callable[[], ModuleType]
) -> None:
    world.set_enabled("orders", False)

    invoke(reconciler())

    assert world.state("orders") == "Enabled"


def test_disabled_with_the_circuit_open_and_no_controller_restarts_the_controller(
    world: World, reconciler: Callable[[], ModuleType], capsys: pytest.CaptureFixture[str]
) -> None:
    world.set_enabled("orders", False)
    world.circuit("partner", "OPEN")

    result = invoke(reconciler())

    assert world.state("orders") == "Disabled"  # the controller probes before anything resumes
    [execution] = world.running()
    assert result["restarted"] == {"partner": execution["executionArn"]}
    described = world.sfn.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"]) == world.control.circuits["partner"]
    [restarted] = metric_points(capsys.readouterr().out, METRIC_CONTROLLERS_RESTARTED)
    assert value(restarted, METRIC_CONTROLLERS_RESTARTED) == 1


def test_a_stale_lock_is_cleared_before_the_controller_is_restarted(
    world: World, reconciler: Callable[[], ModuleType], capsys: pytest.CaptureFixture[str]
) -> None:
    """A controller that died holding its lock would make the restarted one end at once."""
    dead = world.start_controller("partner", name="partner-1767225600")
    world.lock("partner", dead)
    world.stop(dead)
    world.set_enabled("orders", False)
    world.circuit("partner", "OPEN")

    result = invoke(reconciler())

    assert world.item(lock_key("partner")) is None
    assert result["staleLocksCleared"] == {"partner": dead}
    assert len(world.running()) == 1
    [cleared] = metric_points(capsys.readouterr().out, METRIC_STALE_LOCKS_CLEARED)
    assert value(cleared, METRIC_STALE_LOCKS_CLEARED) == 1


def test_a_running_controller_is_left_to_do_its_job(
    world: World, reconciler: Callable[[], ModuleType]
) -> None:
    live = world.start_controller("partner")
    world.lock("partner", live)
    world.set_enabled("orders", False)
    world.circuit("partner", "CLOSED")  # e.g. it closed the circuit and is about to enable

    result = invoke(reconciler())

    assert world.state("orders") == "Disabled"
    assert world.item(lock_key("partner")) is not None  # a live owner's lock is never touched
    assert [e["executionArn"] for e in world.running()] == [live]
    assert result["resumed"] == [] and result["restarted"] == {}


def test_a_controller_of_another_circuit_does_not_count(
    world: World, reconciler: Callable[[], ModuleType]
) -> None:
    world.control.circuits["notifier"] = {**world.control.circuits["partner"], "circuit": "notifier"}
    world.start_controller("notifier")
    world.set_enabled("orders", False)

    invoke(reconciler())

    assert world.state("orders") == "Enabled"


def test_an_operators_hold_is_respected(world: World, reconciler: Callable[[], ModuleType]) -> None:
    import time

    world.set_enabled("orders", False)
    world.hold("orders", until=time.time() + 3600)

    invoke(reconciler())

    assert world.state("orders") == "Disabled"


def test_enabled_consumers_are_left_alone_and_reported_not_paused(
    world: World, reconciler: Callable[[], ModuleType], capsys: pytest.CaptureFixture[str]
) -> None:
    world.circuit("partner", "OPEN")

    result = invoke(reconciler())

    assert world.state("orders") == "Enabled" and world.running() == []
    assert result == {"resumed": [], "restarted": {}, "staleLocksCleared": {}, "paused": {}}
    points = metric_points(capsys.readouterr().out, METRIC_PAUSED_SECONDS)
    assert {p[DIMENSION_CONSUMER]: value(p, METRIC_PAUSED_SECONDS) for p in points} == {
        "orders": 0,
        "notifications": 0,
    }


def test_one_consumer_that_cannot_be_read_fails_the_run_after_the_others_are_reconciled(
    world: World, reconciler: Callable[[], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = world.control.model_copy(
        update={
            "consumers": {
                **world.control.consumers,
                "ghost": world.control.consumers["orders"].model_copy(update={"mapping": "no-such-uuid"}),
            }
        }
    )
    monkeypatch.setenv(CONTROL_ENV, broken.model_dump_json())
    world.set_enabled("orders", False)
    module = reconciler()

    with pytest.raises(module.ReconciliationError, match="ghost"):
        invoke(module)
    assert world.state("orders") == "Enabled"


def test_a_bad_control_document_fails_the_cold_start(
    reconciler: Callable[[], ModuleType], monkeypatch
) -> None:
    monkeypatch.setenv(CONTROL_ENV, '{"consumers": {}}')

    with pytest.raises(ConfigurationError, match=CONTROL_ENV):
        reconciler()
