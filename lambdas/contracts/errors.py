"""Exception names the state machines (statemachines/*.asl.json) match in their Retry and Catch blocks.

Step Functions matches the exception's class *name* (``errorType``) exactly, never its bases; the classes
are defined where they are raised (lambdas/shared/dependency_client.py, lambdas/fulfilment/errors.py) and
tests/statemachines/test_definitions.py holds the class names, these names and the ASL files together.
"""

from __future__ import annotations

from typing import Final

# The dependency client's.
TRANSIENT_UPSTREAM_ERROR: Final = "TransientUpstreamError"
BUDGET_EXHAUSTED_ERROR: Final = "BudgetExhaustedError"
DEPENDENCY_UNAVAILABLE_ERROR: Final = "DependencyUnavailableError"  # the circuit is open: no call made
PERMANENT_UPSTREAM_ERROR: Final = "PermanentUpstreamError"
UPSTREAM_CONFIGURATION_ERROR: Final = "UpstreamConfigurationError"
# The fulfilment task handlers'.
VALIDATION_ERROR: Final = "ValidationError"
UNCONFIRMED_RESULT_ERROR: Final = "UnconfirmedResultError"
CIRCUIT_WAIT_EXPIRED_ERROR: Final = "CircuitWaitExpiredError"
# Step Functions' own: the task's invocation was throttled and never ran.
LAMBDA_TOO_MANY_REQUESTS: Final = "Lambda.TooManyRequestsException"
