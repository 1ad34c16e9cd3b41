"""What the workflow starter, its construct (stacks/workflows.py) and the fulfilment workflow share.

``circuitWait`` in the execution input: when Charge or Ship still finds the dependency's circuit open after
its retrier, order_fulfilment.asl.json waits ``seconds`` (the circuit's recovery window) and tries again,
until ``until`` (unix seconds); after that the step raises ``CircuitWaitExpiredError`` and the failure is
recorded. The limit outlasts the circuit controller's longest pause plus the probes that close the circuit.
"""

from __future__ import annotations

from typing import Final

CIRCUIT_WAIT_SECONDS_VARIABLE: Final = "CIRCUIT_WAIT_SECONDS"
CIRCUIT_WAIT_LIMIT_VARIABLE: Final = "CIRCUIT_WAIT_LIMIT_SECONDS"
# Bounds the fulfilment machine's TimeoutSeconds is sized for (tests/statemachines/test_definitions.py).
CIRCUIT_WAIT_MAX_SECONDS: Final = 900
CIRCUIT_WAIT_MAX_LIMIT_SECONDS: Final = 6 * 3600
