"""Single source of the structured-log field names written for every upstream (dependency) call.

CloudWatch Logs Insights queries and dashboards are generated from these constants, so rename a
field here and nowhere else.
"""

from __future__ import annotations

from typing import Final

# The log message of the one line emitted per upstream attempt (and per call rejected by an open circuit).
UPSTREAM_CALL_MESSAGE: Final = "upstream_call"
# The log message emitted when a non-critical dependency's fallback replaces a failed call.
FALLBACK_MESSAGE: Final = "upstream_fallback"
# The log message emitted when a circuit changes state.
CIRCUIT_TRANSITION_MESSAGE: Final = "circuit_transition"

DEPENDENCY: Final = "dependency"
METHOD: Final = "method"
# The route template (e.g. "/charges/{chargeId}"), never the concrete path: keeps cardinality low.
ROUTE: Final = "route"
STATUS: Final = "status"
STATUS_CLASS: Final = "status_class"
ATTEMPT: Final = "attempt"
MAX_ATTEMPTS: Final = "max_attempts"
LATENCY_MS: Final = "latency_ms"
CIRCUIT_STATE: Final = "circuit_state"
OUTCOME: Final = "outcome"
RETRY_AFTER_S: Final = "retry_after_s"
BACKOFF_MS: Final = "backoff_ms"
ERROR: Final = "error"
FROM_STATE: Final = "from_state"
TO_STATE: Final = "to_state"

# Values of OUTCOME.
OUTCOME_SUCCESS: Final = "success"
OUTCOME_RETRY: Final = "retry"  # attempt failed, another attempt will follow
OUTCOME_GIVE_UP: Final = "give_up"  # retryable failure, but attempts or budget ran out
OUTCOME_PERMANENT: Final = "permanent"  # the request can never succeed (400, 422, a partner code)
OUTCOME_CONFIGURATION: Final = "configuration"  # 401/403 after a key re-read, or another 4xx
OUTCOME_CIRCUIT_OPEN: Final = "circuit_open"  # rejected without calling the dependency

# Values of STATUS_CLASS that are not derived from an HTTP status.
STATUS_CLASS_TIMEOUT: Final = "timeout"
STATUS_CLASS_CONNECTION: Final = "connection"
STATUS_CLASS_CIRCUIT_OPEN: Final = "circuit_open"

ALL_FIELDS: Final = (
    DEPENDENCY,
    METHOD,
    ROUTE,
    STATUS,
    STATUS_CLASS,
    ATTEMPT,
    MAX_ATTEMPTS,
    LATENCY_MS,
    CIRCUIT_STATE,
    OUTCOME,
    RETRY_AFTER_S,
    BACKOFF_MS,
    ERROR,
)
