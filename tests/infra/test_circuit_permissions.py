"""Who may steer a breaker: every function writes only its own dependency's circuit record.

Rules over the whole template: a function that calls a dependency may read and write the circuit record of
that dependency alone (``dynamodb:LeadingKeys``), so a notifier-side function cannot force the partner
circuit open, and no breaker can write the controller's lock item (``<circuit>#controller``). It may put
events on the circuit bus only as the breakers' source and detail type. The controller state machine, which
owns the record and the lock, is the only other writer.
"""

from __future__ import annotations

from typing import Any

from lambdas.contracts.events import CIRCUIT_OPENED, circuit_events_source
from tests.infra.conftest import Synthesized

# What can move a circuit or plant a lock (DeleteItem, the reconciler's, removes a stale lock only).
WRITES = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"}


def actions(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


def resources(statement: dict[str, Any]) -> list[Any]:
    resource = statement["Resource"]
    return resource if isinstance(resource, list) else [resource]


def test_each_function_writes_only_its_own_dependencys_circuit(dev: Synthesized) -> None:
    table = dev.stack.get_logical_id(dev.stack.circuits.table.node.default_child)
    by_role = dev.statements_by_role()
    controller = dev.stack.workflows.controller.role.node.default_child  # type: ignore[union-attr]
    owners = {dev.stack.get_logical_id(controller)}
    checked = set()
    for function in dev.of_type("AWS::Lambda::Function").values():
        properties = function["Properties"]
        role = properties["Role"]["Fn::GetAtt"][0]
        dependency = properties.get("Environment", {}).get("Variables", {}).get("DEPENDENCY_NAME")
        for statement in by_role.get(role, []):
            on_table = any(table in str(r) for r in resources(statement))
            if not on_table or not actions(statement) & (WRITES | {"dynamodb:GetItem"}):
                continue
            if actions(statement) & WRITES and not actions(statement) <= {
                "dynamodb:GetItem",
                "dynamodb:DeleteItem",
            }:
                assert dependency, f"{properties['Handler']} writes circuit records but calls no dependency"
                assert statement.get("Condition") == {
                    "ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [dependency]}
                }, statement
                checked.add(dependency)
    assert checked == set(dev.stack.config.dependencies)
    for role, statements in by_role.items():
        for statement in statements:
            if role in owners or not any(table in str(r) for r in resources(statement)):
                continue
            if actions(statement) & WRITES:
                assert "dynamodb:LeadingKeys" in str(statement.get("Condition")), (role, statement)


def test_circuit_bus_events_only_as_the_breakers_source_and_type(dev: Synthesized) -> None:
    bus = dev.stack.get_logical_id(dev.stack.circuits.events.node.default_child)
    granted = [
        statement
        for statements in dev.statements_by_role().values()
        for statement in statements
        if "events:PutEvents" in actions(statement) and any(bus in str(r) for r in resources(statement))
    ]
    assert granted
    for statement in granted:
        assert statement["Condition"] == {
            "StringEquals": {
                "events:source": [circuit_events_source(dev.stack.config.service_name)],
                "events:detail-type": [CIRCUIT_OPENED],
            }
        }


def test_the_probe_touches_no_circuit(dev: Synthesized) -> None:
    # Its caller is the breaker's owner: the controller's probe loop.
    table = dev.stack.get_logical_id(dev.stack.circuits.table.node.default_child)
    bus = dev.stack.get_logical_id(dev.stack.circuits.events.node.default_child)
    role = dev.stack.get_logical_id(dev.stack.workflows.functions["Probe"].role.node.default_child)
    touched = [
        s
        for s in dev.statements_by_role()[role]
        if any(table in str(r) or bus in str(r) for r in resources(s))
    ]
    assert touched == []
