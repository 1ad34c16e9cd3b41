"""The circuit table: the Powertools circuit breaker's record of each circuit (its default attribute
names), the circuit controller's lock and an operator's hold, beside one another (``id`` = the key).

This module owns a circuit's record: its item shape (the attribute names below), how it reads
(``CircuitRecord``, ``state_of``: no record is CLOSED) and every write this project makes to it, each a
conditional UpdateItem (``Write``: the update expression that moves the record and the condition that guards
it against a racing writer):

* ``OPEN_NOW``: open from now, the probe lease released and the fleet's streak ended; the controller's
  EnsureCircuitOpen (only a CLOSED or absent record) and ``ops circuit open`` (``when`` the record is still
  what the operator was shown: ``unchanged_since``);
* ``REOPEN``: the controller's ReopenCircuit (a still-failing canary restarts the recovery window);
* ``CLOSE``: the controller's CloseCircuit (only an OPEN or HALF_OPEN record) and ``ops circuit close``
  (``unchanged_since``);
* ``ADD_FAILURE`` / ``CLEAR_FAILURES``: the fleet's failure streak (lambdas/shared/fleet_circuit.py).

Who writes: the Powertools breaker (its own PutItem / UpdateItem; ``FleetCircuitStore`` adds the streak
writes above and makes Powertools' updates end the streak, by ``FLEET_FAILURES_ALIAS``), ``ops circuit``
(through ``Write.request``), and the circuit controller (statemachines/circuit_controller.asl.json), which
cannot run Python: its three record writes hold ``OPEN_NOW``, ``REOPEN`` and ``CLOSE`` verbatim, with these
aliases and constants (tests/statemachines/test_definitions.py compares them, and
tests/statemachines/test_circuit_record_writers.py runs every writer's transitions on one table and reads
the results back through Powertools). The reconciler, the order-status shedding and the local cloud only
read the record. The table's key and TTL come from here too (stacks/circuit_breaker.py). A circuit is named
after its dependency (``DEPENDENCY_NAME``). Pure: the standard library alone, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Final

RECORD_KEY: Final = "id"
RECORD_STATE: Final = "state"
RECORD_FAILURE_COUNT: Final = "failure_count"
RECORD_OPENED_AT: Final = "opened_at"  # unix seconds
RECORD_HALF_OPEN_OWNER: Final = "half_open_owner"
RECORD_PROBE_LEASE_EXPIRY: Final = "probe_lease_expiry"  # unix seconds
RECORD_EXPIRATION: Final = "expiration"  # the table's TTL attribute
# The fleet's streak of failed logical calls while CLOSED (lambdas/shared/fleet_circuit.py): beside
# Powertools' attributes (the callers' IAM grant on the item's key covers it); every change of state (a
# breaker's, the controller's, an operator's) removes it.
RECORD_FLEET_FAILURES: Final = "fleet_failures"

# Values of RECORD_STATE.
CLOSED: Final = "CLOSED"
OPEN: Final = "OPEN"
HALF_OPEN: Final = "HALF_OPEN"

# ``<circuit>#controller``: the controller's lock (the owning execution ARN, an expiry in unix seconds, the
# circuit it locks).
LOCK_SUFFIX: Final = "#controller"
LOCK_OWNER: Final = "controller_execution"
LOCK_EXPIRY: Final = "lock_expiry"
LOCK_CIRCUIT: Final = "circuit"

# ``consumer#<name>#hold``: an operator's pause (``ops consumer pause``), left alone until it lapses.
HOLD_UNTIL: Final = "hold_until"  # unix seconds
HOLD_REASON: Final = "reason"
HOLD_EXPIRATION: Final = RECORD_EXPIRATION


def lock_key(circuit: str) -> str:
    return f"{circuit}{LOCK_SUFFIX}"


def hold_key(consumer: str) -> str:
    return f"consumer#{consumer}#hold"


def is_circuit_record(key: str) -> bool:
    """Circuit names cannot contain '#'; the lock and hold items always do."""
    return "#" not in key


# -- Reading a record ------------------------------------------------------------------------------------


def item_key(key: str) -> dict[str, dict[str, str]]:
    """The DynamoDB key of an item of the circuit table: a circuit's record, a lock or a hold."""
    return {RECORD_KEY: {"S": key}}


def _number(item: Mapping[str, Any], name: str) -> int | None:
    value = item.get(name)
    return int(float(value["N"])) if value and "N" in value else None


def _string(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    return value["S"] if value and "S" in value else None


@dataclass(frozen=True)
class CircuitRecord:
    """A circuit's record as the table holds it (numbers in unix seconds; None: the attribute is absent)."""

    name: str
    state: str | None
    failure_count: int | None = None
    opened_at: int | None = None
    half_open_owner: str | None = None
    probe_lease_expiry: int | None = None
    expiration: int | None = None
    fleet_failures: int | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> CircuitRecord:
        """A raw DynamoDB item (``{"state": {"S": "OPEN"}, ...}``) of the circuit's record."""
        return cls(
            name=_string(item, RECORD_KEY) or "",
            state=_string(item, RECORD_STATE),
            failure_count=_number(item, RECORD_FAILURE_COUNT),
            opened_at=_number(item, RECORD_OPENED_AT),
            half_open_owner=_string(item, RECORD_HALF_OPEN_OWNER),
            probe_lease_expiry=_number(item, RECORD_PROBE_LEASE_EXPIRY),
            expiration=_number(item, RECORD_EXPIRATION),
            fleet_failures=_number(item, RECORD_FLEET_FAILURES),
        )


def state_of(item: Mapping[str, Any] | None) -> str:
    """The circuit's state from its raw item: CLOSED without a record (the breaker writes only on
    transitions) or without a state (no writer leaves one so: ``ADD_FAILURE`` gives a new record its state)."""
    return (None if item is None else _string(item, RECORD_STATE)) or CLOSED


# -- Writing a record ------------------------------------------------------------------------------------
# Every write of a record is a conditional UpdateItem named by these aliases (DynamoDB reserves ``state``):
# the Python writers build theirs with ``Write.request``, the controller's ASL holds the same expressions
# verbatim (tests/statemachines/test_definitions.py compares them with these).

ALIASES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "#id": RECORD_KEY,
        "#state": RECORD_STATE,
        "#failure_count": RECORD_FAILURE_COUNT,
        "#opened_at": RECORD_OPENED_AT,
        "#owner": RECORD_HALF_OPEN_OWNER,
        "#lease": RECORD_PROBE_LEASE_EXPIRY,
        "#expiration": RECORD_EXPIRATION,
        "#fleet_failures": RECORD_FLEET_FAILURES,
    }
)
FLEET_FAILURES_ALIAS: Final = "#fleet_failures"
# The values an expression fixes; any other ``:name`` in it is the writer's to give (``:now``, ...).
CONSTANTS: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType(
    {
        ":open": MappingProxyType({"S": OPEN}),
        ":half_open": MappingProxyType({"S": HALF_OPEN}),
        ":closed": MappingProxyType({"S": CLOSED}),
        ":zero": MappingProxyType({"N": "0"}),
        ":one": MappingProxyType({"N": "1"}),
    }
)

# The guards: what a writer expects the record to be, so a transition someone else made meanwhile stands.
IF_CLOSED: Final = "attribute_not_exists(#state) OR #state = :closed"  # or no record yet
IF_OPEN: Final = "#state = :open OR #state = :half_open"

_ALIAS = re.compile(r"#\w+")
_VALUE = re.compile(r":\w+")


@dataclass(frozen=True)
class Write:
    """One conditional UpdateItem of a circuit's record: ``update`` moves it, ``condition`` guards it.

    ``request`` gives boto3's ``update_item`` keywords, the writer's own values (unix seconds as
    ``{"N": ...}``) by their ``:name``: every ``:name`` the expressions use and ``CONSTANTS`` lacks.
    """

    update: str
    condition: str

    def when(self, condition: str) -> Write:
        """The same change under another guard (e.g. ``unchanged_since`` what an operator was shown)."""
        return replace(self, condition=condition)

    @property
    def names(self) -> dict[str, str]:
        """ExpressionAttributeNames: the aliases the expressions use."""
        used = set(_ALIAS.findall(f"{self.update} {self.condition}"))
        unknown = used - set(ALIASES)
        if unknown:
            raise ValueError(f"not an attribute of the circuit record: {sorted(unknown)}")
        return {alias: ALIASES[alias] for alias in sorted(used)}

    @property
    def constants(self) -> dict[str, dict[str, str]]:
        """The ExpressionAttributeValues the expressions fix."""
        used = set(_VALUE.findall(f"{self.update} {self.condition}"))
        return {value: dict(CONSTANTS[value]) for value in sorted(used & set(CONSTANTS))}

    @property
    def inputs(self) -> frozenset[str]:
        """The ExpressionAttributeValues the writer gives."""
        return frozenset(_VALUE.findall(f"{self.update} {self.condition}")) - set(CONSTANTS)

    def request(
        self, table: str, circuit: str, values: Mapping[str, Mapping[str, str]] | None = None
    ) -> dict[str, Any]:
        given = dict(values or {})
        if set(given) != self.inputs:
            raise ValueError(f"values {sorted(given)} for a write that needs {sorted(self.inputs)}")
        request: dict[str, Any] = {
            "TableName": table,
            "Key": item_key(circuit),
            "UpdateExpression": self.update,
            "ConditionExpression": self.condition,
            "ExpressionAttributeNames": self.names,
        }
        attribute_values = {**self.constants, **{name: dict(value) for name, value in given.items()}}
        if attribute_values:
            request["ExpressionAttributeValues"] = attribute_values
        return request


def number(value: float) -> dict[str, str]:
    """A DynamoDB number value (unix seconds are whole)."""
    return {"N": str(int(value))}


# Open from now, the probe lock released (the controller's EnsureCircuitOpen, ``ops circuit open``): callers
# fail fast until one of them probes after the recovery time. ``:now`` and ``:expiration`` (TTL).
OPEN_NOW: Final = Write(
    "SET #state = :open, #opened_at = :now, #failure_count = if_not_exists(#failure_count, :zero), "
    "#expiration = :expiration REMOVE #owner, #lease, #fleet_failures",
    IF_CLOSED,
)
# Still unhealthy: the recovery window starts again from now (the controller's ReopenCircuit). A circuit
# already open or half-open has no fleet streak (one grows only while CLOSED).
REOPEN: Final = Write(
    "SET #state = :open, #opened_at = :now, #expiration = :expiration REMOVE #owner, #lease",
    IF_OPEN,
)
# Healthy again (the controller's CloseCircuit, ``ops circuit close``). ``:expiration``.
CLOSE: Final = Write(
    "SET #state = :closed, #failure_count = :zero, #expiration = :expiration "
    "REMOVE #opened_at, #owner, #lease, #fleet_failures",
    IF_OPEN,
)
# The fleet's failure streak (lambdas/shared/fleet_circuit.py): one more failed logical call while CLOSED
# (a circuit nobody has written yet gets a valid CLOSED record: Powertools needs its state), and its end.
ADD_FAILURE: Final = Write(
    "SET #state = if_not_exists(#state, :closed) ADD #fleet_failures :one",
    IF_CLOSED,
)
CLEAR_FAILURES: Final = Write("REMOVE #fleet_failures", "attribute_exists(#fleet_failures)")


def unchanged_since(item: Mapping[str, Any] | None) -> tuple[str, dict[str, dict[str, str]]]:
    """A guard that holds only while the record is still ``item`` as read (its state and opened_at; None:
    there was no record), with its values (``:seen_state``, ``:seen_opened_at``)."""
    if item is None:
        return "attribute_not_exists(#id)", {}
    values: dict[str, dict[str, str]] = {":seen_state": dict(item[RECORD_STATE])}
    condition = "#state = :seen_state"
    if RECORD_OPENED_AT in item:
        values[":seen_opened_at"] = dict(item[RECORD_OPENED_AT])
        condition += " AND #opened_at = :seen_opened_at"
    else:
        condition += " AND attribute_not_exists(#opened_at)"
    return condition, values
