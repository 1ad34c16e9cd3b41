"""Notify task of ``order_fulfilment.asl.json`` (``${NotifyFunctionArn}``): tell the customer the order shipped.

``POST /notifications`` at the partner through the dependency client (time budget from the invocation,
retries with full jitter, the shared Powertools circuit breaker) with ``Idempotency-Key:
PaymentReceived:<paymentId>:Notify`` (the payment, not the execution: a replay or re-run is a duplicate). Returns ``NotificationResult`` (orderId, notificationId, idempotencyKey,
replayed, attempts). Contract and error names: ``lambdas/fulfilment/tasks.py``.

Non-critical, and handled by the workflow rather than by the client's fallback: a failure raises
(``TransientUpstreamError`` / ``DependencyUnavailableError`` ...), the ASL's Notify Retry tries again
with the same key, and its Catch puts a WARNING with the execution input on the notification-failure
queue, from which it can be replayed, before the order succeeds. A fallback would have to report "sent"
for a notification nobody sent (for a POST the last-known-good body is another notification's answer)
and would leave nothing to replay, so a fallback response is refused (``tasks._confirmed``) even if
DEPENDENCY_CRITICAL is false.

Environment: ``lambdas.fulfilment.environment.TaskSettings`` (parsed at init; a bad variable fails the
cold start with its name).
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.fulfilment import tasks
from lambdas.fulfilment.environment import TaskSettings
from lambdas.fulfilment.partner import connect

settings = TaskSettings.from_environment(os.environ)
logger = Logger(service=settings.service_name)
tracer = Tracer(service=settings.service_name)
metrics = Metrics(service=settings.service_name)
partner = connect(settings, logger)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return tasks.run_step("Notify", tasks.notify, partner, event, context, logger=logger, metrics=metrics)
