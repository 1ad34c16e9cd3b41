"""EMF metric names and dimensions the functions publish and the stacks alarm on.

Namespace: the service name (``POWERTOOLS_METRICS_NAMESPACE``, ``environment.METRICS_NAMESPACE``); Powertools
adds the ``service`` dimension (``DIMENSION_SERVICE``) to every metric a handler's ``Metrics`` flushes.
"""

from __future__ import annotations

from typing import Final

DIMENSION_SERVICE: Final = "service"

# -- the dependency client (lambdas/shared/dependency_client.py): per attempt, dimensions dependency (+
# status_class on errors); the log_fields names double as dimensions.
METRIC_UPSTREAM_CALLS: Final = "UpstreamCalls"
METRIC_UPSTREAM_LATENCY: Final = "UpstreamLatency"
METRIC_UPSTREAM_ERRORS: Final = "UpstreamErrors"
METRIC_FALLBACK_USED: Final = "FallbackUsed"
METRIC_CIRCUIT_REJECTIONS: Final = "CircuitOpenRejections"
METRIC_CIRCUIT_TRANSITION: Final = "CircuitTransition"
# The controller's probes that found the dependency still unhealthy (lambdas/fulfilment/probe.py): one per
# recovery window while the circuit stays open, so the circuit's alarm stays in ALARM for a whole outage,
# also while the paused consumer makes no calls (and so no rejections).
METRIC_CIRCUIT_PROBES_FAILED: Final = "CircuitProbesFailed"
DIMENSION_TO_STATE: Final = "to_state"
# One data point per logical call (all its attempts), by what it finally meant. The alarm that pauses
# consumers reads the failure RATE of these (stacks/monitoring.py), not single attempts.
METRIC_LOGICAL_CALLS: Final = "UpstreamLogicalCalls"
DIMENSION_OUTCOME: Final = "outcome"
CALL_OUTCOME_SUCCESS: Final = "success"
CALL_OUTCOME_TRANSIENT: Final = "transient"  # still failing after the retries (incl. budget after a try)
CALL_OUTCOME_PERMANENT: Final = "permanent"  # the request can never succeed (quarantined by callers)
CALL_OUTCOME_CONFIGURATION: Final = "configuration"  # credentials or route wrong: ours to fix
CALL_OUTCOMES: Final = (
    CALL_OUTCOME_SUCCESS,
    CALL_OUTCOME_TRANSIENT,
    CALL_OUTCOME_PERMANENT,
    CALL_OUTCOME_CONFIGURATION,
)
# Outcomes that say the dependency (or our configuration of it) is unusable: these pause consumers.
CALL_OUTCOMES_FAILED: Final = (CALL_OUTCOME_TRANSIENT, CALL_OUTCOME_CONFIGURATION)

# -- the idempotency table (lambdas/shared/stores.py): a record that cannot be guarded stays in its queue.
METRIC_IDEMPOTENCY_STORE_ERRORS: Final = "IdempotencyStoreErrors"

# -- the notifications consumer: one per notification deferred because its dependency was unavailable.
METRIC_NOTIFICATIONS_DEFERRED: Final = "NotificationsDeferred"

# -- the consumer reconciler (lambdas/reconciler).
METRIC_PAUSED_SECONDS: Final = "ConsumerPausedSeconds"
DIMENSION_CONSUMER: Final = "consumer"
METRIC_RESUMED: Final = "ConsumersResumed"
METRIC_CONTROLLERS_RESTARTED: Final = "ControllersRestarted"
METRIC_STALE_LOCKS_CLEARED: Final = "StaleControllerLocksCleared"
