"""Errors the fulfilment task handlers raise besides the dependency client's.

Step Functions matches the exception's class *name* (``errorType``), not its bases, against the ASL's
Retry/Catch ``ErrorEquals``. The dependency client's ``TransientUpstreamError``, ``BudgetExhaustedError``,
``DependencyUnavailableError`` and ``PermanentUpstreamError`` reach the workflow under those names; the
names here are:

``ValidationError``        the task event does not follow the contract: never retried (order_fulfilment
                           lists it with ``PermanentUpstreamError``).
``UnconfirmedResultError`` the partner answered 2xx but the body does not confirm this order's side
                           effect: no retrier matches it, so the step's Catch records it for a person.
``CircuitWaitExpiredError`` the circuit was still open at the execution's circuit-wait deadline
                           (``circuitWait.until``): no retrier or wait matches it, so the step's Catch
                           records it for a person.
``DependencyUnhealthyError`` the canary answered 2xx but not an expected status, or reported itself
                           unhealthy (probe only; the controller treats every probe error the same).
``CanaryNotDryRunError``   a canary that is not GET/HEAD came back without ``Dry-Run: true``: the
                           partner may have acted on it (probe only; logged as an error).
"""

from __future__ import annotations


class ValidationError(ValueError):
    """The task event is not what the state machine contract promises."""


class UnconfirmedResultError(Exception):
    """A 2xx response that does not confirm the requested side effect (wrong order, unreadable body)."""


class CircuitWaitExpiredError(Exception):
    """The circuit stayed open past the execution's circuit-wait deadline: stop waiting, record it."""


class DependencyUnhealthyError(Exception):
    """The dependency's canary answered, but not with a healthy status."""


class CanaryNotDryRunError(DependencyUnhealthyError):
    """A side-effecting canary came back without ``Dry-Run: true``: the partner may have acted on it."""
