"""Show and force a dependency's circuit: the Powertools circuit breaker record in the circuit table.

The record, how it reads and the writes below belong to ``lambdas.contracts.circuit`` (which this module
only calls): partition key ``id`` = the circuit name (DEPENDENCY_NAME), ``state`` (CLOSED | OPEN |
HALF_OPEN), ``failure_count``, ``opened_at`` (epoch seconds), ``half_open_owner`` and ``probe_lease_expiry``
(the half-open probe's lock), ``fleet_failures`` (the fleet's failure streak) and ``expiration`` (the
table's TTL attribute). No record means CLOSED: the breaker writes only on transitions.

``open``  state OPEN, opened_at now, the probe lock and the fleet's streak removed (``OPEN_NOW``). Every
          breaker that reads the record (within its local cache age, 5 s by default) fails fast without
          calling the dependency. After BREAKER_RECOVERY_SECONDS one execution environment probes the
          dependency; if it succeeds the circuit closes by itself. To hold a circuit open longer, open it
          again.
``close`` state CLOSED, failure_count 0, opened_at / half_open_owner / probe_lease_expiry / the streak
          removed (``CLOSE``).

Both writes are conditional on the record being what the operator was shown (state and opened_at:
``unchanged_since``), so a transition a breaker made in between is never overwritten blindly: the command
fails and asks to look again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

from lambdas.contracts import circuit as circuit_record
from lambdas.contracts.circuit import is_circuit_record
from ops.aws import Aws, error_code
from ops.console import Console, iso_time
from ops.errors import EXIT_OK, OpsError, UsageError

# How long a forced record lives before DynamoDB TTL may delete it (a deleted record reads as CLOSED).
FORCED_RECORD_TTL_SECONDS: Final = 24 * 3600


def read(aws: Aws, table: str, name: str) -> dict[str, Any] | None:
    try:
        response = aws.client("dynamodb").get_item(
            TableName=table, Key=circuit_record.item_key(name), ConsistentRead=True
        )
    except Exception as error:
        if error_code(error) == "ResourceNotFoundException":
            raise UsageError(f"no table {table!r}") from None
        raise
    item: dict[str, Any] | None = response.get("Item")
    return item


def describe(name: str, item: dict[str, Any] | None, now: float) -> dict[str, Any]:
    if item is None:
        return {"name": name, "state": circuit_record.CLOSED, "record": False}
    record = circuit_record.CircuitRecord.from_item(item)
    return {
        "name": name,
        "state": record.state or "?",
        "record": True,
        "failure_count": record.failure_count,
        "opened_at": iso_time(record.opened_at),
        "open_for_seconds": None if record.opened_at is None else int(now - record.opened_at),
        "half_open_owner": record.half_open_owner,
        "probe_lease_expiry": iso_time(record.probe_lease_expiry),
        "expiration": iso_time(record.expiration),
        # Failed calls across the fleet since the last success while CLOSED (lambdas/shared/fleet_circuit.py).
        "fleet_failures": record.fleet_failures,
    }


def _print(console: Console, shown: dict[str, Any]) -> None:
    if not shown["record"]:
        console.info(f"circuit {shown['name']}: CLOSED (no record: no call has failed nor opened it yet)")
        return
    line = f"circuit {shown['name']}: {shown['state']}"
    if shown["opened_at"]:
        line += f" since {shown['opened_at']} ({shown['open_for_seconds']} s)"
    console.info(line)
    for key in ("failure_count", "fleet_failures", "half_open_owner", "probe_lease_expiry", "expiration"):
        if shown.get(key) is not None:
            console.info(f"  {key}: {shown[key]}")


def list_circuits(aws: Aws, console: Console, table: str, now: Callable[[], float] = time.time) -> int:
    items: list[dict[str, Any]] = []
    for page in aws.client("dynamodb").get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        # The controller's locks and operators' consumer holds live in the same table: not circuits.
        items += [
            item
            for item in page.get("Items", [])
            if is_circuit_record(circuit_record.CircuitRecord.from_item(item).name)
        ]
    shown = [
        describe(circuit_record.CircuitRecord.from_item(item).name or "?", item, now()) for item in items
    ]
    console.info(f"{len(shown)} circuit record(s) in {table} (a circuit without a record is CLOSED):")
    for circuit in sorted(shown, key=lambda c: c["name"]):
        _print(console, circuit)
    console.result({"table": table, "circuits": shown})
    return EXIT_OK


def show(aws: Aws, console: Console, table: str, name: str, now: Callable[[], float] = time.time) -> int:
    shown = describe(name, read(aws, table, name), now())
    _print(console, shown)
    console.result({"table": table, **shown})
    return EXIT_OK


def force(
    aws: Aws,
    console: Console,
    table: str,
    name: str,
    target: str,
    now: Callable[[], float] = time.time,
) -> int:
    """Force the circuit ``name`` to ``target`` (OPEN or CLOSED)."""
    item = read(aws, table, name)
    before = describe(name, item, now())
    _print(console, before)
    if target == circuit_record.CLOSED and (item is None or before["state"] == circuit_record.CLOSED):
        console.info(f"circuit {name} is already closed: nothing to do")
        console.result({"table": table, "before": before, "after": before, "changed": False})
        return EXIT_OK
    if target == circuit_record.OPEN and item is None:
        console.info(
            f"no record for {name} yet: either it has never opened, or the name is wrong "
            "(the circuit name is the dependency's DEPENDENCY_NAME)"
        )
    action = (
        f"force circuit {name} OPEN: callers fail fast without calling the dependency until a probe "
        "after the recovery time closes it"
        if target == circuit_record.OPEN
        else f"force circuit {name} CLOSED: callers call the dependency again"
    )
    console.confirm(action)
    at = int(now())
    # Both writes hold only while the record is what was shown: a breaker's transition meanwhile stands.
    condition, seen = circuit_record.unchanged_since(item)
    values = {**seen, ":expiration": circuit_record.number(at + FORCED_RECORD_TTL_SECONDS)}
    if target == circuit_record.OPEN:
        write = circuit_record.OPEN_NOW
        values[":now"] = circuit_record.number(at)
    else:
        write = circuit_record.CLOSE
    try:
        aws.client("dynamodb").update_item(**write.when(condition).request(table, name, values))
    except Exception as error:
        if error_code(error) == "ConditionalCheckFailedException":
            raise OpsError(
                f"circuit {name} changed while you were deciding (a breaker moved it): nothing was written; "
                "run the command again to see its new state"
            ) from None
        raise
    after = describe(name, read(aws, table, name), now())
    console.info(f"circuit {name} is now {after['state']}")
    if target == circuit_record.OPEN:
        console.info(
            "breakers see it within their local cache age (5 s by default); after BREAKER_RECOVERY_SECONDS "
            "one of them probes the dependency and closes the circuit if the probe succeeds"
        )
    console.result({"table": table, "before": before, "after": after, "changed": True})
    return EXIT_OK
