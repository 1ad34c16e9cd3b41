"""One reconciliation run against AWS: observe every consumer, decide (decisions.py), act.

Reads, per run: the controller's RUNNING executions (ListExecutions, then DescribeExecution for each one's
``circuit``: rules start it under random names, so the input is the only link to a circuit), each
circuit's lock item and record, and each consumer's mapping and hold item. Writes only what a decision
calls for: UpdateEventSourceMapping(Enabled=true), StartExecution of the controller with the input the
stack's rules send, and a conditional DeleteItem of a lock whose owner no longer runs.

Executions are listed once per run, before any consumer is looked at. A controller that starts after
the listing is still safe: it forces the circuit OPEN before it disables a mapping, so the reconciler sees
OPEN and restarts the controller, whose new execution finds the lock taken and ends at once. The one
window left is a controller starting between reading a CLOSED circuit and the resume (milliseconds): if
the resume lands after its DisableConsumers, the consumer polls while the circuit is open (failing fast,
its messages back in the queue) until that controller closes the circuit or gives up.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lambdas.contracts.circuit import HOLD_UNTIL, LOCK_OWNER, RECORD_STATE, hold_key, item_key, lock_key
from lambdas.contracts.consumer_control import EXECUTION_RUNNING
from lambdas.reconciler.control import ConsumerControl
from lambdas.reconciler.decisions import (
    Action,
    Decision,
    Observation,
    decide,
    lock_is_stale,
    restart_name,
)


@dataclass
class Report:
    decisions: list[Decision] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    restarted: dict[str, str] = field(default_factory=dict)  # circuit -> execution ARN
    stale_locks_cleared: dict[str, str] = field(default_factory=dict)  # circuit -> dead owner
    errors: dict[str, str] = field(default_factory=dict)  # consumer or circuit -> error


def _error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _number(item: dict[str, Any] | None, name: str) -> float | None:
    value = (item or {}).get(name)
    return float(value["N"]) if value and "N" in value else None


def _string(item: dict[str, Any] | None, name: str) -> str | None:
    value = (item or {}).get(name)
    return value["S"] if value and "S" in value else None


class Reconciler:
    def __init__(
        self,
        control: ConsumerControl,
        *,
        lambda_client: Any,
        dynamodb: Any,
        stepfunctions: Any,
        clock: Callable[[], float],
    ) -> None:
        self.control = control
        self._lambda = lambda_client
        self._dynamodb = dynamodb
        self._sfn = stepfunctions
        self._clock = clock

    # -- reads --------------------------------------------------------------------------------

    def _item(self, key: str) -> dict[str, Any] | None:
        response = self._dynamodb.get_item(
            TableName=self.control.circuit_table, Key=item_key(key), ConsistentRead=True
        )
        item: dict[str, Any] | None = response.get("Item")
        return item

    def running_controllers(self) -> dict[str, list[str]]:
        """circuit -> ARNs of the controller executions running for it."""
        running: dict[str, list[str]] = {}
        paginator = self._sfn.get_paginator("list_executions")
        for page in paginator.paginate(
            stateMachineArn=self.control.controller_arn, statusFilter=EXECUTION_RUNNING
        ):
            for execution in page.get("executions", []):
                arn = execution["executionArn"]
                described = self._sfn.describe_execution(executionArn=arn)
                if described.get("status") != EXECUTION_RUNNING:
                    continue
                try:
                    circuit = json.loads(described.get("input") or "{}").get("circuit")
                except ValueError:
                    circuit = None
                if isinstance(circuit, str):
                    running.setdefault(circuit, []).append(arn)
        return running

    def _execution_status(self, arn: str) -> str | None:
        try:
            status: str = self._sfn.describe_execution(executionArn=arn)["status"]
        except ClientError as error:
            if _error_code(error) in ("ExecutionDoesNotExist", "InvalidArn"):
                return None
            raise
        return status

    def observe(self, consumer: str, running: dict[str, list[str]]) -> Observation:
        controlled = self.control.consumers[consumer]
        mapping = self._lambda.get_event_source_mapping(UUID=controlled.mapping)
        modified = mapping.get("LastModified")
        record = self._item(controlled.circuit)
        hold = self._item(hold_key(consumer))
        return Observation(
            consumer=consumer,
            circuit=controlled.circuit,
            mapping_state=str(mapping.get("State", "")),
            mapping_modified_at=modified.timestamp() if modified is not None else None,
            circuit_state=_string(record, RECORD_STATE),
            controller_running=bool(running.get(controlled.circuit)),
            paused_by_controller=self.control.paused_by_controller(consumer),
            hold_until=_number(hold, HOLD_UNTIL),
        )

    # -- writes -------------------------------------------------------------------------------

    def clear_stale_lock(self, circuit: str, running: dict[str, list[str]]) -> str | None:
        """Delete the circuit's controller lock if its owner no longer runs; the dead owner's ARN."""
        owner = _string(self._item(lock_key(circuit)), LOCK_OWNER)
        if owner is None or owner in running.get(circuit, []):
            return None
        # Asked again, by ARN: an execution that started after the listing may hold the lock by now.
        if not lock_is_stale(self._execution_status(owner)):
            return None
        try:
            self._dynamodb.delete_item(
                TableName=self.control.circuit_table,
                Key=item_key(lock_key(circuit)),
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": LOCK_OWNER},
                ExpressionAttributeValues={":owner": {"S": owner}},
            )
        except ClientError as error:
            if _error_code(error) == "ConditionalCheckFailedException":
                return None  # another controller took it meanwhile: it is live
            raise
        return owner

    def resume(self, consumer: str) -> None:
        self._lambda.update_event_source_mapping(UUID=self.control.consumers[consumer].mapping, Enabled=True)

    def restart_controller(self, circuit: str) -> str:
        try:
            response = self._sfn.start_execution(
                stateMachineArn=self.control.controller_arn,
                name=restart_name(circuit, self._clock()),
                input=json.dumps(self.control.circuits[circuit], sort_keys=True),
            )
        except ClientError as error:
            if _error_code(error) == "ExecutionAlreadyExists":
                return "already started this minute"
            raise
        arn: str = response["executionArn"]
        return arn

    # -- one run ------------------------------------------------------------------------------

    def run(self) -> Report:
        report = Report()
        running = self.running_controllers()
        for circuit in self.control.circuits:
            try:
                owner = self.clear_stale_lock(circuit, running)
            except (ClientError, BotoCoreError) as error:
                report.errors[circuit] = str(error)[:500]
                continue
            if owner:
                report.stale_locks_cleared[circuit] = owner
        for consumer in sorted(self.control.consumers):
            try:
                decision = decide(self.observe(consumer, running), self._clock())
                report.decisions.append(decision)
                if decision.action is Action.RESUME:
                    self.resume(consumer)
                    report.resumed.append(consumer)
                elif (
                    decision.action is Action.RESTART_CONTROLLER and decision.circuit not in report.restarted
                ):
                    report.restarted[decision.circuit] = self.restart_controller(decision.circuit)
            except (ClientError, BotoCoreError) as error:
                report.errors[consumer] = str(error)[:500]
        return report
