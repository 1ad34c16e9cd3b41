"""GET /orders/{id}: an order's status (API Gateway REST API, Lambda proxy integration).

    400  the id does not match the order schema's orderId (schemas/order.schema.json)
    404  no status for that id (the consumer has not received the order yet, or it was never placed; the
         message says both)
    200  {"orderId", "status", "updatedAt", "acceptedAt", "reason"?, "detail"?, "chargeId"?, "attempts"}
    503  + Retry-After: shedding load (the dependency's circuit is open / half-open, or the order queue's
         backlog is over its threshold), or the status could not be read within the budget

Every downstream call takes its timeouts and retries from the request's budget (lambdas/order_status/budget.py):
``min(REQUEST_BUDGET_MS, remaining function time - RESPONSE_MARGIN_MS)``, with REQUEST_BUDGET_MS validated to
stay under API Gateway's 29 s integration limit. Load shedding: lambdas/order_status/shedding.py.
Configuration: lambdas/order_status/settings.py.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Final

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from lambdas.contracts.api import RETRY_AFTER_HEADER
from lambdas.contracts.environment import SERVICE_NAME
from lambdas.order_status.budget import Budget, BudgetExhaustedError, ClientPool, timeouts_for
from lambdas.order_status.settings import StatusReaderSettings
from lambdas.order_status.shedding import LoadShedder
from lambdas.shared.models import IDENTIFIER_PATTERN
from lambdas.shared.order_status import OrderStatusRepository

MAX_ID_LENGTH: Final = 64  # Identifier in lambdas/shared/models.py (orderId in schemas/order.schema.json)
NO_STATUS_YET_MESSAGE: Final = (
    "no status for order {order_id}: an accepted order has one once its consumer has received it "
    "(a backlog or a paused consumer delays that; its 202 means it is stored), an order never placed has none"
)
_ID = re.compile(IDENTIFIER_PATTERN)
# Errors that say "try again shortly" rather than "this function is misconfigured".
RETRYABLE_ERROR_CODES: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)

# ------------------------------------------------------------------ execution-environment init (once)
settings = StatusReaderSettings.from_environment(os.environ)
SERVICE = os.environ.get(SERVICE_NAME, "order-status")
logger = Logger(service=SERVICE)
clients = ClientPool()
shedder = LoadShedder(
    clients=clients,
    circuit_table=settings.circuit_breaker_table_name,
    circuit_name=settings.dependency_name,
    recovery_seconds=settings.breaker_recovery_seconds,
    queue_url=settings.order_queue_url,
    backlog_threshold=settings.order_queue_backlog_threshold,
    queue_retry_after_s=settings.shed_retry_after_seconds,
    check_timeout_ms=settings.shed_check_timeout_ms,
    max_attempts=settings.downstream_max_attempts,
    cache_seconds=settings.shed_cache_seconds,
    logger=logger,
)
# Create the clients a request with a full budget uses now, at init: a boto3 client takes tens of
# milliseconds to build, which would otherwise be spent inside the first request's budget.
for _service, _cap in (
    ("dynamodb", settings.shed_check_timeout_ms),
    ("sqs", settings.shed_check_timeout_ms),
    ("dynamodb", settings.downstream_timeout_ms),
):
    clients.client(_service, timeouts_for(_cap, max_attempts=settings.downstream_max_attempts))


def valid_order_id(value: Any) -> str | None:
    if isinstance(value, str) and 1 <= len(value) <= MAX_ID_LENGTH and _ID.match(value):
        return value
    return None


def respond(status: int, body: dict[str, Any], *, retry_after: int | None = None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", "Cache-Control": "no-store"}
    if retry_after is not None:
        headers[RETRY_AFTER_HEADER] = str(retry_after)
    return {"statusCode": status, "headers": headers, "body": json.dumps(body)}


def unavailable(reason: str, retry_after: int, message: str) -> dict[str, Any]:
    # One EMF data point per shed request (dimension: why), nothing on the normal path.
    with single_metric(
        name="StatusRequestsShed", unit=MetricUnit.Count, value=1, default_dimensions={"service": SERVICE}
    ) as metric:
        metric.add_dimension(name="reason", value=reason)
    logger.warning("order status unavailable", extra={"reason": reason, "retry_after_s": retry_after})
    return respond(
        503,
        {"message": message, "reason": reason, "retryAfterSeconds": retry_after},
        retry_after=retry_after,
    )


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    budget = Budget.start(
        settings.request_budget_ms, context.get_remaining_time_in_millis(), settings.response_margin_ms
    )
    if event.get("httpMethod", "GET") != "GET":
        return respond(405, {"message": "only GET is supported"})
    order_id = valid_order_id((event.get("pathParameters") or {}).get("id"))
    if order_id is None:
        return respond(
            400, {"message": f"order id must be 1-{MAX_ID_LENGTH} characters matching {IDENTIFIER_PATTERN}"}
        )
    logger.append_keys(order_id=order_id)

    decision = shedder.decide(budget)
    if decision.shed:
        return unavailable(
            decision.reason or "degraded",
            decision.retry_after_s,
            "orders are not being processed right now; retry after the given seconds",
        )
    try:
        dynamodb = clients.for_call(
            "dynamodb",
            budget,
            cap_ms=settings.downstream_timeout_ms,
            max_attempts=settings.downstream_max_attempts,
        )
        status = OrderStatusRepository(settings.order_status_table_name, dynamodb).get(order_id)
    except (BudgetExhaustedError, BotoCoreError) as error:
        logger.warning("status read did not fit in the budget", extra={"error": repr(error)})
        return unavailable(
            "status_unavailable",
            settings.unavailable_retry_after_seconds,
            "the order status could not be read",
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in RETRYABLE_ERROR_CODES:
            return unavailable(
                "status_unavailable",
                settings.unavailable_retry_after_seconds,
                "the order status could not be read",
            )
        logger.exception("status read failed")
        return respond(500, {"message": "internal error"})
    if status is None:
        # Storage-first: the front door's 202 wrote only to the queue; the status appears when a consumer
        # receives the order, which a backlog or a paused consumer can delay by minutes. Say so.
        return respond(404, {"message": NO_STATUS_YET_MESSAGE.format(order_id=order_id)})
    return respond(200, status.model_dump(mode="json", exclude_none=True))
