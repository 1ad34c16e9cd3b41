"""Show and force a dependency's circuit: the Powertools circuit breaker record in the circuit table.

Record (aws_lambda_powertools.utilities.circuit_breaker.persistence.CircuitBreakerDynamoDBPersistence with
its default attribute names, as lambdas/shared/dependency_client.py uses it): partition key ``id`` = the
circuit name (DEPENDENCY_NAME), ``state`` (CLOSED | OPEN | HALF_OPEN), ``failure_count``, ``opened_at``
(epoch seconds), ``half_open_owner`` and ``probe_lease_expiry`` (the half-open probe's lock), and
``expiration`` (the table's TTL attribute). No record means CLOSED: the breaker writes only on transitions.

``open``  state OPEN, opened_at now, the probe lock removed. Every breaker that reads the record (within its
          local cache age, 5 s by default) fails fast without calling the dependency. After
          BREAKER_RECOVERY_SECONDS one execution environment probes the dependency; if it succeeds the
          circuit closes by itself. To hold a circuit open longer, open it again.
``close`` state CLOSED, failure_count 0, opened_at / half_open_owner / probe_lease_expiry removed.

Both writes are conditional on the record being what the operator was shown (state and opened_at), so a
transition a breaker made in between is never overwritten blindly: the command fails and asks to look again.
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


def _n(item: dict[str, Any], name: str) -> int | None:
    value = item.get(name)
    return int(float(value["N"])) if value and "N" in value else None


def _s(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return value["S"] if value and "S" in value else None


def read(aws: Aws, table: str, name: str) -> dict[str, Any] | None:
    try:
        response = aws.client("dynamodb").get_item(
            TableName=table, Key={circuit_record.RECORD_KEY: {"S": name}}, ConsistentRead=True
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
    opened_at = _n(item, circuit_record.RECORD_OPENED_AT)
    lease = _n(item, circuit_record.RECORD_PROBE_LEASE_EXPIRY)
    return {
        "name": name,
        "state": _s(item, circuit_record.RECORD_STATE) or "?",
        "record": True,
        "failure_count": _n(item, circuit_record.RECORD_FAILURE_COUNT),
        "opened_at": iso_time(opened_at),
        "open_for_seconds": None if opened_at is None else int(now - opened_at),
        "half_open_owner": _s(item, circuit_record.RECORD_HALF_OPEN_OWNER),
        "probe_lease_expiry": iso_time(lease),
        "expiration": iso_time(_n(item, circuit_record.RECORD_EXPIRATION)),
        # Failed calls across the fleet since the last success while CLOSED (lambdas/shared/fleet_circuit.py).
        "fleet_failures": _n(item, circuit_record.RECORD_FLEET_FAILURES),
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


def _unchanged_condition(item: dict[str, Any] | None) -> tuple[str, dict[str, str], dict[str, Any]]:
    """A condition that holds only while the record is still what was read (and shown)."""
    if item is None:
        return "attribute_not_exists(#id)", {"#id": circuit_record.RECORD_KEY}, {}
    names = {"#state": circuit_record.RECORD_STATE, "#opened_at": circuit_record.RECORD_OPENED_AT}
    values: dict[str, Any] = {":seen_state": item[circuit_record.RECORD_STATE]}
    condition = "#state = :seen_state"
    if circuit_record.RECORD_OPENED_AT in item:
        values[":seen_opened_at"] = item[circuit_record.RECORD_OPENED_AT]
        condition += " AND #opened_at = :seen_opened_at"
    else:
        condition += " AND attribute_not_exists(#opened_at)"
    return condition, names, values


def list_circuits(aws: Aws, console: Console, table: str, now: Callable[[], float] = time.time) -> int:
    items: list[dict[str, Any]] = []
    for page in aws.client("dynamodb").get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        # The controller's locks and operators' consumer holds live in the same table: not circuits.
        items += [
            item
            for item in page.get("Items", [])
            if is_circuit_record(_s(item, circuit_record.RECORD_KEY) or "")
        ]
    shown = [describe(_s(item, circuit_record.RECORD_KEY) or "?", item, now()) for item in items]
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
    condition, names, values = _unchanged_condition(item)
    names.update(
        {
            "#state": circuit_record.RECORD_STATE,
            "#failure_count": circuit_record.RECORD_FAILURE_COUNT,
            "#opened_at": circuit_record.RECORD_OPENED_AT,
            "#owner": circuit_record.RECORD_HALF_OPEN_OWNER,
            "#lease": circuit_record.RECORD_PROBE_LEASE_EXPIRY,
            "#expiration": circuit_record.RECORD_EXPIRATION,
            # The fleet's failure streak ends with any change of state.
            "#streak": circuit_record.RECORD_FLEET_FAILURES,
        }
    )
    values.update({":state": {"S": target}, ":expiration": {"N": str(at + FORCED_RECORD_TTL_SECONDS)}})
    if target == circuit_record.OPEN:
        values[":now"] = {"N": str(at)}
        values[":failures"] = {"N": str(before.get("failure_count") or 0)}
        expression = (
            "SET #state = :state, #failure_count = :failures, #opened_at = :now, #expiration = :expiration "
            "REMOVE #owner, #lease, #streak"
        )
    else:
        values[":zero"] = {"N": "0"}
        expression = "SET #state = :state, #failure_count = :zero, #expiration = :expiration REMOVE #opened_at, #owner, #lease, #streak"
    try:
        aws.client("dynamodb").update_item(
            TableName=table,
            Key={circuit_record.RECORD_KEY: {"S": name}},
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
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
