"""FleetCircuitStore: Powertools' circuit record with a fractional cache age, fresh reads and the fleet's streak.

Against a moto table shaped like the stack's; the cache runs on a clock the test moves.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aws_lambda_powertools.utilities.circuit_breaker import CircuitState
from botocore.exceptions import ClientError

from lambdas.contracts.circuit import RECORD_FLEET_FAILURES, RECORD_OPENED_AT
from lambdas.shared.fleet_circuit import (
    STREAK_WRITE_FAILED_MESSAGE,
    FleetCircuitStore,
)
from tests.unit.helpers import BreakerTable, ManualClock, unique_name


class CountingClient:
    """The table's client, counting the writes the store makes."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.updates: list[dict[str, Any]] = []

    def update_item(self, **kwargs: Any) -> Any:
        self.updates.append(kwargs)
        return self._client.update_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def make_store(
    table: BreakerTable, clock: ManualClock, cache_seconds: float = 0.5, client: Any = None
) -> FleetCircuitStore:
    return FleetCircuitStore(
        table.name, cache_seconds=cache_seconds, clock=clock, boto3_client=client or table.client
    )


def opened_after_a_read(
    table: BreakerTable, clock: ManualClock, cache_seconds: float
) -> tuple[FleetCircuitStore, str]:
    """A store that read its circuit CLOSED, after which another environment opened it."""
    circuit = unique_name("c")
    store = make_store(table, clock, cache_seconds=cache_seconds)
    assert store.get_state(circuit).state == CircuitState.CLOSED
    table.put(circuit, "OPEN", {RECORD_OPENED_AT: 1})
    return store, circuit


def test_the_cached_state_is_trusted_for_the_fraction_of_a_second_configured(
    breaker_table: BreakerTable, clock: ManualClock
) -> None:
    store, circuit = opened_after_a_read(breaker_table, clock, cache_seconds=0.5)

    clock.now += 0.499
    assert store.get_state(circuit).state == CircuitState.CLOSED  # still the cached view
    clock.now += 0.001
    assert store.get_state(circuit).state == CircuitState.OPEN  # 0.5 s: read again, not a whole second


def test_a_zero_cache_age_reads_the_table_every_time(breaker_table: BreakerTable, clock: ManualClock) -> None:
    store, circuit = opened_after_a_read(breaker_table, clock, cache_seconds=0)
    assert store.get_state(circuit).state == CircuitState.OPEN


def test_a_negative_cache_age_is_refused(breaker_table: BreakerTable, clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="cache_seconds"):
        make_store(breaker_table, clock, cache_seconds=-0.1)


def test_a_fresh_read_bypasses_the_cache_and_refreshes_it(
    breaker_table: BreakerTable, clock: ManualClock
) -> None:
    store, circuit = opened_after_a_read(breaker_table, clock, cache_seconds=60)

    assert store.read_fresh(circuit).state == CircuitState.OPEN
    assert store.get_state(circuit).state == CircuitState.OPEN  # the cache holds what the fresh read saw


def test_failures_add_up_across_environments_and_each_learns_the_count(
    breaker_table: BreakerTable, clock: ManualClock
) -> None:
    circuit = unique_name("c")
    first, second = make_store(breaker_table, clock), make_store(breaker_table, clock)

    assert first.add_failure(circuit) == 1
    assert second.add_failure(circuit) == 2
    assert first.fleet_failures(circuit) == 1  # what it last wrote, until it reads again
    assert first.read_fresh(circuit).state == CircuitState.CLOSED
    assert first.fleet_failures(circuit) == 2
    # The first failure created the record: a valid CLOSED one that Powertools reads like its own.
    assert breaker_table.state(circuit) == "CLOSED"
    assert breaker_table.fleet_failures(circuit) == 2


def test_no_failure_is_added_while_the_circuit_is_not_closed(
    breaker_table: BreakerTable, clock: ManualClock
) -> None:
    circuit = unique_name("c")
    breaker_table.put(circuit, "OPEN", {RECORD_OPENED_AT: 1})
    store = make_store(breaker_table, clock)

    assert store.add_failure(circuit) is None
    assert breaker_table.fleet_failures(circuit) is None


def test_a_success_clears_a_streak_it_knows_of_and_writes_nothing_otherwise(
    breaker_table: BreakerTable, clock: ManualClock
) -> None:
    circuit = unique_name("c")
    counting = CountingClient(breaker_table.client)
    store = make_store(breaker_table, clock, client=counting)

    store.clear_failures(circuit)  # no streak seen: the healthy path stays write-free
    assert counting.updates == []

    breaker_table.put(circuit, "CLOSED", {RECORD_FLEET_FAILURES: 3})
    store.read_fresh(circuit)
    store.clear_failures(circuit)
    assert breaker_table.fleet_failures(circuit) is None
    assert store.fleet_failures(circuit) == 0
    assert len(counting.updates) == 1
    # Within the cache age of the streak it saw, a success clears again: other environments may have failed
    # since this one's last read (a brown-out), and their streak must not add up across its successes.
    clock.now += store.cache_seconds
    store.clear_failures(circuit)
    assert len(counting.updates) == 2
    clock.now += 0.01  # past it: the healthy path is write-free again
    store.clear_failures(circuit)
    assert len(counting.updates) == 2


def test_opening_electing_a_prober_and_closing_end_the_streak(
    breaker_table: BreakerTable, clock: ManualClock
) -> None:
    circuit = unique_name("c")
    store = make_store(breaker_table, clock)
    for _ in range(3):
        store.add_failure(circuit)

    store.save_open(circuit, failure_count=3, opened_at=1)  # Powertools' PutItem: the whole item
    assert (breaker_table.state(circuit), breaker_table.fleet_failures(circuit)) == ("OPEN", None)
    assert store.fleet_failures(circuit) == 0

    assert store.try_acquire_half_open(circuit, "me", opened_at=1)
    store.save_closed(circuit)
    breaker_table.put(circuit, "CLOSED", {RECORD_FLEET_FAILURES: 2})  # e.g. a streak left by a racing write
    store.save_reopen(circuit, opened_at=2)  # Powertools' UpdateItem removes it too
    assert (breaker_table.state(circuit), breaker_table.fleet_failures(circuit)) == ("OPEN", None)
    breaker_table.put(circuit, "HALF_OPEN", {RECORD_FLEET_FAILURES: 2})
    store.save_closed(circuit)
    assert (breaker_table.state(circuit), breaker_table.fleet_failures(circuit)) == ("CLOSED", None)


class FailingClient(CountingClient):
    def update_item(self, **kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "UpdateItem")


def test_a_failed_streak_write_is_logged_and_never_raised(
    breaker_table: BreakerTable, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    circuit = unique_name("c")
    breaker_table.put(circuit, "CLOSED", {RECORD_FLEET_FAILURES: 1})
    store = make_store(breaker_table, clock, client=FailingClient(breaker_table.client))
    store.read_fresh(circuit)

    with caplog.at_level(logging.WARNING):
        assert store.add_failure(circuit) is None
        store.clear_failures(circuit)

    assert [r.getMessage() for r in caplog.records].count(STREAK_WRITE_FAILED_MESSAGE) == 2


class SlowClient(CountingClient):
    """The table's client, each request taking ``seconds`` on the store's clock."""

    def __init__(self, client: Any, clock: ManualClock, seconds: float) -> None:
        super().__init__(client)
        self._clock, self.seconds = clock, seconds

    def update_item(self, **kwargs: Any) -> Any:
        self._clock.now += self.seconds
        return super().update_item(**kwargs)

    def get_item(self, **kwargs: Any) -> Any:
        self._clock.now += self.seconds
        return self._client.get_item(**kwargs)


def test_every_table_request_is_timed_and_the_slowest_recent_one_is_known(
    breaker_table: BreakerTable, clock: ManualClock
) -> None:
    circuit = unique_name("c")
    slow = SlowClient(breaker_table.client, clock, seconds=0.25)
    store = make_store(breaker_table, clock, cache_seconds=0, client=slow)
    assert store.slowest_request_ms == 0  # nothing measured yet

    store.read_fresh(circuit)
    assert store.slowest_request_ms == pytest.approx(250)
    slow.seconds = 0.4
    store.add_failure(circuit)
    assert store.slowest_request_ms == pytest.approx(400)

    # Only the last RECENT_REQUESTS count: a table that got fast again is trusted again.
    slow.seconds = 0.01
    for _ in range(FleetCircuitStore.RECENT_REQUESTS):
        store.get_state(circuit)
    assert store.slowest_request_ms == pytest.approx(10)


def test_the_cached_state_is_answered_without_a_read(breaker_table: BreakerTable, clock: ManualClock) -> None:
    store, circuit = opened_after_a_read(breaker_table, clock, cache_seconds=0.5)
    assert store.cached_state(circuit) == CircuitState.CLOSED  # what it read, although the table says OPEN
    clock.now += 0.5
    assert store.cached_state(circuit) is None  # expired: nothing known without a read


@pytest.mark.parametrize("renamed", [{"state_attr": "status"}, {"sort_key_attr": "circuit"}])
def test_the_record_keeps_the_contracts_attribute_names(
    breaker_table: BreakerTable, clock: ManualClock, renamed: dict[str, str]
) -> None:
    """The streak's writes, ops and the controller name lambdas.contracts.circuit's attributes: a store on
    other names would write a record none of them reads."""
    with pytest.raises(ValueError, match=r"lambdas\.contracts\.circuit"):
        FleetCircuitStore(
            breaker_table.name, cache_seconds=0, clock=clock, boto3_client=breaker_table.client, **renamed
        )


def test_a_success_ends_a_streak_another_environment_started_after_this_ones_last_view(
    breaker_table: BreakerTable, clock: ManualClock
) -> None:
    """A brown-out: environments fail and succeed in turn, each with a view up to the cache age old."""
    circuit = unique_name("c")
    first, second = make_store(breaker_table, clock), make_store(breaker_table, clock)
    assert first.add_failure(circuit) == 1
    first.clear_failures(circuit)  # its call succeeded: its view is 0 now
    assert second.add_failure(circuit) == 1  # another environment fails meanwhile

    clock.now += first.cache_seconds / 2
    first.clear_failures(circuit)  # its next success ends the streak it cannot see yet
    assert breaker_table.fleet_failures(circuit) is None
