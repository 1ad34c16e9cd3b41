"""The circuit table: the Powertools circuit breaker's record of each circuit (its default attribute
names), the circuit controller's lock and an operator's hold, beside one another (``id`` = the key).

The breaker (and the fleet's failure streak on its record), the controller
(statemachines/circuit_controller.asl.json), the reconciler, the order-status shedding, ``ops circuit`` and
the local cloud read or write these items; the table's key and TTL come from here too
(stacks/circuit_breaker.py). A circuit is named after its dependency (``DEPENDENCY_NAME``).
"""

from __future__ import annotations

from typing import Final

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
