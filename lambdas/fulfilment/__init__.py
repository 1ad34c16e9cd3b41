"""Task handlers for the Step Functions workflows in ``statemachines/``.

What is here
------------
``clock.handler``
    The circuit controller's clock (``${ClockFunctionArn}`` in ``circuit_controller.asl.json``). The circuit record is the Powertools circuit breaker's, whose times
    are unix seconds; a JSONPath state machine has no unix clock (only ``$$.State.EnteredTime``, an ISO
    string, and no arithmetic to convert it), the JSONata ``$millis()`` is rejected by the project's ASL
    validator (statelint 1.30.0) and cannot run on moto 5.2.5. So one tiny pure function reads the
    same kind of clock the Powertools breaker reads (``time.time()`` in Lambda). It is invoked only off
    the healthy path: when a record is OPEN/HALF_OPEN and on state transitions.

Contract for the order-fulfilment task handlers (Charge / Ship / Notify)
------------------------------------------------------------------------
One function per step, each pointing at its handler in ``handler.py`` (``charge_handler``,
``ship_handler``, ``notify_handler``) implements it (``tasks.py``: event model, partner calls;
``partner.py``: the dependency client, API key and circuit hook they share with the consumers).
``probe.handler`` serves the circuit controller with exactly one call (the same client, without its
breaker). ``order_fulfilment.asl.json`` invokes each task with::

    {"step": "Charge"|"Ship"|"Notify", "order": {...}, "idempotencyKey": "...",
     "executionName": "...", "attempt": <$$.State.RetryCount>, "charge": ..., "shipment": ...}

and relies on:

* the function timeout being 30 s (the Task ``TimeoutSeconds``);
* side effects being idempotent on the payment and the step (``PaymentReceived:<paymentId>:<step>``
  as the partner's Idempotency-Key), never on ``executionName``: Step Functions retries after
  ``States.Timeout`` when the outcome is unknown, and a replay or a re-run is a new execution for the
  same payment;
* errors surfacing as exception *class names* (Step Functions matches ``errorType`` exactly, base
  classes do not count; the names: ``lambdas.contracts.errors``): ``TransientUpstreamError`` / ``BudgetExhaustedError`` (retried, short backoff),
  ``DependencyUnavailableError`` (the circuit is open; retried, long backoff),
  ``PermanentUpstreamError`` / ``ValidationError`` (never retried: recorded and failed).
  ``UpstreamConfigurationError`` (the partner refused our key or route) has no retrier either: the
  final ``States.ALL`` Catch records and fails it, after it counted toward the shared breaker.
"""
