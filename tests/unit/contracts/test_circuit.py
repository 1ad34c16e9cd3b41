"""lambdas.contracts.circuit: the circuit record's reads and the writes every Python writer sends (the
controller's ASL is compared with them in tests/statemachines/test_definitions.py, and every writer runs on
one table in tests/statemachines/test_circuit_record_writers.py)."""

from __future__ import annotations

import pytest

from lambdas.contracts import circuit
from lambdas.contracts.circuit import CircuitRecord, Write


def test_a_write_names_exactly_the_aliases_and_constants_its_expressions_use() -> None:
    request = circuit.CLOSE.request("circuits", "partner", {":expiration": circuit.number(100.7)})

    assert request == {
        "TableName": "circuits",
        "Key": {"id": {"S": "partner"}},
        "UpdateExpression": circuit.CLOSE.update,
        "ConditionExpression": "#state = :open OR #state = :half_open",
        "ExpressionAttributeNames": {
            "#expiration": "expiration",
            "#failure_count": "failure_count",
            "#fleet_failures": "fleet_failures",
            "#lease": "probe_lease_expiry",
            "#opened_at": "opened_at",
            "#owner": "half_open_owner",
            "#state": "state",
        },
        "ExpressionAttributeValues": {
            ":closed": {"S": "CLOSED"},
            ":half_open": {"S": "HALF_OPEN"},
            ":open": {"S": "OPEN"},
            ":zero": {"N": "0"},
            ":expiration": {"N": "100"},
        },
    }


def test_the_writer_gives_exactly_the_values_the_constants_lack() -> None:
    assert circuit.OPEN_NOW.inputs == {":now", ":expiration"}
    assert circuit.REOPEN.inputs == {":now", ":expiration"}
    assert circuit.CLOSE.inputs == {":expiration"}
    assert circuit.ADD_FAILURE.inputs == circuit.CLEAR_FAILURES.inputs == frozenset()
    with pytest.raises(ValueError, match="needs"):
        circuit.CLOSE.request("circuits", "partner")
    with pytest.raises(ValueError, match="needs"):
        circuit.CLOSE.request("circuits", "partner", {":expiration": {"N": "1"}, ":now": {"N": "1"}})


def test_a_write_names_nothing_but_the_records_attributes() -> None:
    with pytest.raises(ValueError, match="not an attribute of the circuit record"):
        _ = Write("SET #controller_execution = :me", "attribute_not_exists(#controller_execution)").names


def test_every_change_of_state_ends_the_fleets_streak_and_releases_the_probe_lease() -> None:
    for write in (circuit.OPEN_NOW, circuit.CLOSE):
        removed = write.update.split(" REMOVE ", 1)[1].replace(",", " ").split()
        assert {circuit.FLEET_FAILURES_ALIAS, "#owner", "#lease"} <= set(removed)
    # A reopen starts from OPEN or HALF_OPEN, where no streak grows (ADD_FAILURE only while CLOSED).
    assert circuit.REOPEN.condition == circuit.IF_OPEN and circuit.ADD_FAILURE.condition == circuit.IF_CLOSED


def test_unchanged_since_pins_the_state_and_opened_at_that_were_read() -> None:
    assert circuit.unchanged_since(None) == ("attribute_not_exists(#id)", {})
    opened = {"id": {"S": "p"}, "state": {"S": "OPEN"}, "opened_at": {"N": "12"}}
    assert circuit.unchanged_since(opened) == (
        "#state = :seen_state AND #opened_at = :seen_opened_at",
        {":seen_state": {"S": "OPEN"}, ":seen_opened_at": {"N": "12"}},
    )
    closed = {"id": {"S": "p"}, "state": {"S": "CLOSED"}}
    condition, values = circuit.unchanged_since(closed)
    assert condition == "#state = :seen_state AND attribute_not_exists(#opened_at)"
    request = circuit.OPEN_NOW.when(condition).request(
        "circuits", "p", {**values, ":now": circuit.number(5), ":expiration": circuit.number(9)}
    )
    assert request["ConditionExpression"] == condition
    assert request["ExpressionAttributeNames"]["#opened_at"] == "opened_at"
    assert ":closed" not in request["ExpressionAttributeValues"]  # IF_CLOSED's value went with it


def test_a_record_reads_from_its_raw_item() -> None:
    item = {
        "id": {"S": "partner"},
        "state": {"S": "HALF_OPEN"},
        "failure_count": {"N": "5"},
        "opened_at": {"N": "100"},
        "half_open_owner": {"S": "env-1"},
        "probe_lease_expiry": {"N": "130.0"},
        "expiration": {"N": "3700"},
        "fleet_failures": {"N": "2"},
    }
    assert CircuitRecord.from_item(item) == CircuitRecord(
        name="partner",
        state="HALF_OPEN",
        failure_count=5,
        opened_at=100,
        half_open_owner="env-1",
        probe_lease_expiry=130,
        expiration=3700,
        fleet_failures=2,
    )
    assert CircuitRecord.from_item({"id": {"S": "p"}}) == CircuitRecord(name="p", state=None)


def test_no_record_is_closed() -> None:
    assert circuit.state_of(None) == circuit.CLOSED
    assert circuit.state_of({"id": {"S": "p"}, "fleet_failures": {"N": "1"}}) == circuit.CLOSED
    assert circuit.state_of({"id": {"S": "p"}, "state": {"S": "OPEN"}}) == circuit.OPEN
    assert circuit.item_key("p#controller") == {"id": {"S": "p#controller"}}
