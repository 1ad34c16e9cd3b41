"""The Charge / Ship / Notify task functions of ``order_fulfilment.asl.json``: one module, a handler per step.

Each step is its own function (``${ChargeFunctionArn}``, ``${ShipFunctionArn}``, ``${NotifyFunctionArn}``)
with its own environment (Charge and Ship call the partner, Notify the notifier), so each points at its
handler here: ``charge_handler`` (``POST /charges``: capture the payment), ``ship_handler`` (``POST
/shipments``: book the shipment of the charged order) and ``notify_handler`` (``POST /notifications``: tell
the customer; a fallback is refused, see ``tasks.notify``). Every call goes through the dependency client
(time budget from the invocation, retries with full jitter, the shared Powertools circuit breaker) with
``Idempotency-Key: PaymentReceived:<paymentId>:<step>``. Contract, results and error names:
``lambdas/fulfilment/tasks.py``.

Environment: ``lambdas.fulfilment.environment.TaskSettings``, parsed at init (a bad variable fails the cold
start with its name).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.fulfilment import tasks
from lambdas.fulfilment.environment import TaskSettings
from lambdas.fulfilment.partner import connect
from lambdas.shared.observability import observability

settings = TaskSettings.from_environment(os.environ)
logger, tracer, metrics = observability(settings.service_name)
partner = connect(settings, logger)

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def _step_handler(step: tasks.Step, perform: tasks.StepFunction) -> Handler:
    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler
    @metrics.log_metrics(capture_cold_start_metric=True)
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return tasks.run_step(step, perform, partner, event, context, logger=logger, metrics=metrics)

    return handler


charge_handler = _step_handler("Charge", tasks.charge)
ship_handler = _step_handler("Ship", tasks.ship)
notify_handler = _step_handler("Notify", tasks.notify)
