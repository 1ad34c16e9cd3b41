"""Names the consumer reconciler, its construct (stacks/consumer_reconciler.py) and the ops CLI
(ops/consumer.py) share, so none of them spells one differently.

The control document (env ``CONSUMER_CONTROL`` of the reconciler, stack output ``ConsumerControl``)::

    {"controller_arn": "<circuit controller state machine ARN>",
     "circuit_table": "<circuit table name>",
     "circuits": {"<circuit>": <the controller input the stack's rules send for that circuit>},
     "consumers": {"<consumer>": {"mapping": "<event source mapping UUID>", "circuit": "<circuit>"}}}

A consumer whose circuit is in ``circuits`` is one the controller pauses (its dependency is critical).

Items the reconciler reads in the circuit table, beside the Powertools records (``id`` = circuit):
``<circuit>#controller`` is the controller's lock (statemachines/circuit_controller.asl.json:
``controller_execution`` = the owning execution ARN, ``lock_expiry`` unix seconds); ``consumer#<name>#hold``
is an operator's pause (``ops consumer pause``: ``hold_until`` unix seconds, ``reason``), which the
reconciler leaves alone until it lapses.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

CONTROL_ENV: Final = "CONSUMER_CONTROL"
CONTROL_OUTPUT: Final = "ConsumerControl"

# Powertools circuit breaker record (its default attribute names).
RECORD_KEY: Final = "id"
RECORD_STATE: Final = "state"
RECORD_OPENED_AT: Final = "opened_at"
CLOSED: Final = "CLOSED"

LOCK_SUFFIX: Final = "#controller"
LOCK_OWNER: Final = "controller_execution"
LOCK_EXPIRY: Final = "lock_expiry"

HOLD_UNTIL: Final = "hold_until"
HOLD_REASON: Final = "reason"
HOLD_EXPIRATION: Final = "expiration"  # the table's TTL attribute

# Metrics (namespace: POWERTOOLS_METRICS_NAMESPACE = the service name; Powertools adds ``service``).
METRIC_PAUSED_SECONDS: Final = "ConsumerPausedSeconds"
DIMENSION_CONSUMER: Final = "consumer"
METRIC_RESUMED: Final = "ConsumersResumed"
METRIC_CONTROLLERS_RESTARTED: Final = "ControllersRestarted"
METRIC_STALE_LOCKS_CLEARED: Final = "StaleControllerLocksCleared"

MAPPING_ENABLED: Final = "Enabled"
MAPPING_DISABLED: Final = "Disabled"
EXECUTION_RUNNING: Final = "RUNNING"


def lock_key(circuit: str) -> str:
    return f"{circuit}{LOCK_SUFFIX}"


def hold_key(consumer: str) -> str:
    return f"consumer#{consumer}#hold"


def is_circuit_record(key: str) -> bool:
    """Circuit names cannot contain '#'; the lock and hold items always do."""
    return "#" not in key


class ControlledConsumer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mapping: str = Field(min_length=1)
    circuit: str = Field(min_length=1)


class ConsumerControl(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    controller_arn: str = Field(min_length=1)
    circuit_table: str = Field(min_length=3)
    circuits: dict[str, dict[str, Any]]
    consumers: dict[str, ControlledConsumer] = Field(min_length=1)

    def paused_by_controller(self, consumer: str) -> bool:
        return self.consumers[consumer].circuit in self.circuits
