"""The Charge / Ship / Notify steps of ``order_fulfilment.asl.json``: event contract and partner calls.

Every step receives (see ``lambdas/fulfilment/__init__.py``)::

    {"step": "Charge"|"Ship"|"Notify", "order": {...}, "idempotencyKey": "...", "executionName": "...",
     "attempt": <$$.State.RetryCount>, "charge": <Charge result>, "shipment": <Ship result>,
     "circuitWaitUntil": <unix seconds, or null: Charge and Ship only>}

``order`` is what the workflow starter builds from a PaymentReceived event (``FulfilmentOrder``). Each
step makes one logical call to the partner (the client's budgeted retries and the shared Powertools
breaker included) with ``Idempotency-Key: PaymentReceived:<paymentId>:<step>``: the business fact, not
the execution. It is the same on every Step Functions retry (a retry after a timeout whose outcome is
unknown replays the first side effect instead of repeating it) and in every other execution for the same
payment: an archive replay or a re-run of a failed execution has a new execution name, and reaches the
partner as a duplicate. The step's result becomes ``$.<step>.result`` in the execution and the next
step's input.

Errors keep the names the ASL matches: the client's ``TransientUpstreamError`` / ``BudgetExhaustedError``
/ ``DependencyUnavailableError`` / ``PermanentUpstreamError``, and ``ValidationError`` /
``UnconfirmedResultError`` from ``lambdas.fulfilment.errors``. An open circuit (``DependencyUnavailableError``)
that outlasts the step's retrier sends the workflow into a wait loop on the circuit; once the execution's
``circuitWaitUntil`` has passed, the step raises ``CircuitWaitExpiredError`` instead, which is recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final, Literal, TypeVar

import pydantic
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lambdas.contracts import log_fields as lf
from lambdas.contracts.api import CHARGES_PATH, NOTIFICATIONS_PATH, SHIPMENTS_PATH
from lambdas.fulfilment.errors import CircuitWaitExpiredError, UnconfirmedResultError, ValidationError
from lambdas.fulfilment.partner import Partner
from lambdas.shared.dependency_client import (
    DependencyResponse,
    DependencyUnavailableError,
    TransientUpstreamError,
)
from lambdas.shared.events import PaymentReceived, contract_for
from lambdas.shared.models import (
    AmountCents,
    ChargeRequest,
    ChargeResponse,
    Currency,
    Identifier,
    NotificationRequest,
    NotificationResponse,
    PartnerId,
    ShipmentRequest,
    ShipmentResponse,
    replayed_by_partner,
)

Step = Literal["Charge", "Ship", "Notify"]
STEP_SUCCEEDED_METRIC: Final = "FulfilmentStepSucceeded"
STEP_FAILED_METRIC: Final = "FulfilmentStepFailed"
STEP_DIMENSION: Final = "step"
# status_class of the error raised when a non-critical client hands back a fallback instead of a result.
STATUS_CLASS_FALLBACK: Final = "fallback"
NOTIFICATION_TEMPLATE: Final = "order_shipped"
# The event an order is fulfilled for: its business key (not the execution) keys the partner calls.
FULFILS: Final = contract_for(PaymentReceived)

ModelT = TypeVar("ModelT", bound=BaseModel)


# ---------------------------------------------------------------------------------------------- models


class _Tolerant(BaseModel):
    # The execution input and earlier steps' results are read tolerantly: an execution started (or a
    # step finished) by a newer deployment may carry fields this version does not know yet.
    model_config = ConfigDict(extra="ignore", frozen=True)


class FulfilmentOrder(_Tolerant):
    """The execution input's ``order``: the PaymentReceived detail the Charge/Ship/Notify steps need."""

    orderId: Identifier
    amountCents: AmountCents
    currency: Currency
    # Required: the partner calls are keyed on it (``TaskEvent.partner_idempotency_key``).
    paymentId: Identifier
    # PaymentReceived does not carry the customer; the partner resolves it from the order when absent.
    customerId: Identifier | None = None


class _StepResult(_Tolerant):
    """What every step reports of its partner call, beside what the partner confirmed."""

    orderId: Identifier
    idempotencyKey: str
    replayed: bool = False
    attempts: int = 0


class ChargeResult(_StepResult):
    chargeId: PartnerId
    amountCents: AmountCents
    currency: Currency


class ShipmentResult(_StepResult):
    shipmentId: PartnerId
    chargeId: PartnerId


class NotificationResult(_StepResult):
    notificationId: PartnerId


class TaskEvent(BaseModel):
    """The payload order_fulfilment.asl.json sends each task (its ``Parameters.Payload``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: Step
    order: FulfilmentOrder
    idempotencyKey: str = Field(min_length=1, max_length=255)
    executionName: str = Field(min_length=1, max_length=80)
    attempt: int = Field(default=0, ge=0)
    # Unix seconds until which the workflow waits out an open circuit (None: it does not wait).
    circuitWaitUntil: float | None = Field(default=None, ge=0)
    charge: ChargeResult | None = None
    shipment: ShipmentResult | None = None

    @model_validator(mode="after")
    def _earlier_steps_present(self) -> TaskEvent:
        if self.step in ("Ship", "Notify") and self.charge is None:
            raise ValueError(f"{self.step} needs the Charge result in 'charge'")
        if self.step == "Notify" and self.shipment is None:
            raise ValueError("Notify needs the Ship result in 'shipment'")
        for earlier in (self.charge, self.shipment):
            if earlier is not None and earlier.orderId != self.order.orderId:
                raise ValueError(
                    f"an earlier result is for order {earlier.orderId!r}, not {self.order.orderId!r}"
                )
        return self

    def circuit_wait_expired(self, now: float) -> bool:
        return self.circuitWaitUntil is not None and now >= self.circuitWaitUntil

    @property
    def partner_idempotency_key(self) -> str:
        """``PaymentReceived:<paymentId>:<step>``: one per payment and step, whatever the execution.

        Not the execution name: a replay or a re-run starts a new execution for the same payment, and
        must reach the partner as a duplicate rather than charge and ship again.
        """
        return f"{FULFILS.business_key(self.order)}:{self.step}"


def parse_task(event: Any, step: Step) -> TaskEvent:
    """Validate a task event for ``step``; raises ValidationError (never retried by the workflow)."""
    try:
        task = TaskEvent.model_validate(event)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'event'}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)[:10]
        )
        raise ValidationError(f"invalid {step} task event: {problems}") from None
    if task.step != step:
        raise ValidationError(f"this function runs the {step} step, the event is for {task.step}")
    return task


# ---------------------------------------------------------------------------------------------- steps


def charge(partner: Partner, task: TaskEvent, *, remaining_ms: Callable[[], int]) -> ChargeResult:
    """Capture the order's payment: ``POST /charges``."""
    order = task.order
    request = ChargeRequest(orderId=order.orderId, amountCents=order.amountCents, currency=order.currency)
    body, call = _post(
        partner, task, CHARGES_PATH, request.model_dump(mode="json"), ChargeResponse, remaining_ms
    )
    if (body.orderId, body.amountCents, body.currency) != (order.orderId, order.amountCents, order.currency):
        raise UnconfirmedResultError(f"charge {body.chargeId} does not match order {order.orderId}")
    return ChargeResult(
        orderId=order.orderId,
        chargeId=body.chargeId,
        amountCents=body.amountCents,
        currency=body.currency,
        **call,
    )


def ship(partner: Partner, task: TaskEvent, *, remaining_ms: Callable[[], int]) -> ShipmentResult:
    """Book the shipment of the charged order: ``POST /shipments``."""
    if task.charge is None:  # TaskEvent already refuses this; the check narrows the type
        raise ValidationError("Ship needs the Charge result")
    request = ShipmentRequest(
        orderId=task.order.orderId, chargeId=task.charge.chargeId, customerId=task.order.customerId
    )
    payload = request.model_dump(mode="json", exclude_none=True)
    body, call = _post(partner, task, SHIPMENTS_PATH, payload, ShipmentResponse, remaining_ms)
    if (body.orderId, body.chargeId) != (request.orderId, request.chargeId):
        raise UnconfirmedResultError(f"shipment {body.shipmentId} does not match order {request.orderId}")
    return ShipmentResult(orderId=body.orderId, shipmentId=body.shipmentId, chargeId=body.chargeId, **call)


def notify(partner: Partner, task: TaskEvent, *, remaining_ms: Callable[[], int]) -> NotificationResult:
    """Tell the customer the order shipped: ``POST /notifications``.

    The notification is non-critical, but this step still raises when it cannot confirm it: the ASL's
    Notify Retry/Catch then records the failure on the notification-failure queue (a WARNING, with the
    execution input, for a replay) and the order succeeds. A client fallback would instead report
    "sent" for a message nobody sent and leave no trace to replay, so a fallback is refused here.
    """
    if task.shipment is None:  # TaskEvent already refuses this; the check narrows the type
        raise ValidationError("Notify needs the Ship result")
    request = NotificationRequest(
        orderId=task.order.orderId,
        template=NOTIFICATION_TEMPLATE,
        shipmentId=task.shipment.shipmentId,
        customerId=task.order.customerId,
    )
    payload = request.model_dump(mode="json", exclude_none=True)
    body, call = _post(partner, task, NOTIFICATIONS_PATH, payload, NotificationResponse, remaining_ms)
    if body.orderId != request.orderId:
        raise UnconfirmedResultError(f"notification {body.notificationId} is not for order {request.orderId}")
    return NotificationResult(orderId=task.order.orderId, notificationId=body.notificationId, **call)


def _post(
    partner: Partner,
    task: TaskEvent,
    path: str,
    json: dict[str, Any],
    model: type[ModelT],
    remaining_ms: Callable[[], int],
) -> tuple[ModelT, dict[str, Any]]:
    """The step's one logical call, keyed by its idempotency key: the confirmed body, and what the
    ``_StepResult`` fields record of the call."""
    key = task.partner_idempotency_key
    response = partner.client.post(path, json=json, headers=partner.headers(key), remaining_ms=remaining_ms)
    body = _confirmed(partner, response, model)
    return body, {
        "idempotencyKey": key,
        "replayed": replayed_by_partner(response.headers),
        "attempts": response.attempts,
    }


def _confirmed(partner: Partner, response: DependencyResponse, model: type[ModelT]) -> ModelT:
    if response.from_fallback:
        # Only a non-critical client falls back, and only after a transient failure or an open circuit:
        # report it as transient so the workflow retries with the same Idempotency-Key.
        raise TransientUpstreamError(
            f"{partner.name} returned a fallback ({response.fallback_source}), not a result",
            dependency=partner.name,
            status_class=STATUS_CLASS_FALLBACK,
            attempts=response.attempts,
        )
    try:
        return model.model_validate(response.body)
    except pydantic.ValidationError as exc:
        raise UnconfirmedResultError(
            f"unexpected {model.__name__} from {partner.name}: {exc.error_count()} error(s)"
        ) from None


# ---------------------------------------------------------------------------------------------- handler


StepFunction = Callable[..., BaseModel]


def run_step(
    step: Step,
    perform: StepFunction,
    partner: Partner,
    event: Any,
    context: LambdaContext,
    *,
    logger: Logger,
    metrics: Metrics,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """What every step handler does: validate, call with the invocation's time budget, log, count.

    Exceptions propagate unchanged (their class name is the workflow's error name) after one log line,
    except an open circuit past the execution's circuit-wait deadline: that becomes
    ``CircuitWaitExpiredError``, which ends the workflow's wait and is recorded.
    """
    metrics.add_dimension(name=STEP_DIMENSION, value=step)
    try:
        task = parse_task(event, step)
    except ValidationError as exc:
        logger.error("invalid task event", extra={STEP_DIMENSION: step, lf.ERROR: str(exc)})
        metrics.add_metric(name=STEP_FAILED_METRIC, unit=MetricUnit.Count, value=1)
        raise
    with logger.append_context_keys(
        order_id=task.order.orderId,
        execution_name=task.executionName,
        step=step,
        workflow_attempt=task.attempt,
    ):
        try:
            result = perform(partner, task, remaining_ms=context.get_remaining_time_in_millis)
        except Exception as exc:
            failure = exc
            if isinstance(exc, DependencyUnavailableError) and task.circuit_wait_expired(clock()):
                failure = CircuitWaitExpiredError(
                    f"{exc}; the circuit-wait deadline {task.circuitWaitUntil} passed"
                )
            logger.warning(
                "fulfilment step failed",
                extra={lf.ERROR: type(failure).__name__, "error_message": str(failure)[:1000]},
            )
            metrics.add_metric(name=STEP_FAILED_METRIC, unit=MetricUnit.Count, value=1)
            if failure is exc:
                raise
            raise failure from exc
        output = result.model_dump(mode="json")
        logger.info("fulfilment step succeeded", extra={"result": output})
    metrics.add_metric(name=STEP_SUCCEEDED_METRIC, unit=MetricUnit.Count, value=1)
    return output
