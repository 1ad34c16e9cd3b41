"""What the consumer reconciler, its construct (stacks/consumer_reconciler.py) and the ops CLI
(ops/consumer.py) share, so none of them spells it differently.

The control document (environment ``CONSUMER_CONTROL`` of the reconciler, stack output ``ConsumerControl``;
parsed by lambdas/reconciler/control.py)::

    {"controller_arn": "<circuit controller state machine ARN>",
     "circuit_table": "<circuit table name>",
     "circuits": {"<circuit>": <the controller input the stack's rules send for that circuit>},
     "consumers": {"<consumer>": {"mapping": "<event source mapping UUID>", "circuit": "<circuit>"}}}

A consumer whose circuit is in ``circuits`` is one the controller pauses (its dependency is critical).
The items the reconciler reads in the circuit table are in ``lambdas.contracts.circuit``, its metrics in
``lambdas.contracts.metrics``.
"""

from __future__ import annotations

from typing import Final

CONTROL_ENV: Final = "CONSUMER_CONTROL"
CONTROL_OUTPUT: Final = "ConsumerControl"

MAPPING_ENABLED: Final = "Enabled"
MAPPING_DISABLED: Final = "Disabled"
EXECUTION_RUNNING: Final = "RUNNING"
