"""``${DependencyCallFunctionArn}`` of ``circuit_breaker.asl.json``: ONE call to the dependency.

The workflow is the breaker: it reads the shared circuit record, decides whether to call, and counts the
outcome of this single attempt. So there is no client-side retry loop and no Powertools breaker here
(``lambdas/fulfilment/single_call.py``).

Event (from the CallDependency state)::

    {"circuit": "<circuit name>", "mode": "CLOSED"|"PROBE", "executionName": "...",
     "request": {"method": "GET"|"POST", "path": "/charges", "body": <JSON, optional>,
                 "idempotencyKey": "<optional; POST default: the execution name>"}}

Result (``$.call.result``, the execution's output on success): ``{"status": <2xx>, "body": <JSON>}``.

Errors, by the name the ASL routes on:
  * ``PermanentUpstreamError`` (4xx other than 429) and ``ValidationError`` (bad event, or a ``circuit``
    that is not this function's dependency): the dependency is up, the failure is not counted;
  * ``TransientUpstreamError`` (5xx, 429, timeout, connection) and ``BudgetExhaustedError``: counted as a
    breaker failure (a PROBE failure reopens the circuit).

A POST carries ``Idempotency-Key`` (the request's, else the execution name), so a caller that retries
the same execution name cannot repeat the side effect.

Environment: ``lambdas.fulfilment.environment.CallerSettings``.
"""

from __future__ import annotations

import os
import re
from typing import Any, Literal

import pydantic
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, field_validator

from lambdas.fulfilment.environment import CallerSettings
from lambdas.fulfilment.errors import ValidationError
from lambdas.fulfilment.single_call import SingleCaller
from lambdas.shared import log_fields as lf
from lambdas.shared.api_key import API_KEY_HEADER, load_api_key
from lambdas.shared.models import IDEMPOTENCY_KEY_HEADER

# A plain absolute path: no query, no '..' segment, nothing that could leave the dependency's base URL.
_PATH = re.compile(r"^(/[A-Za-z0-9._~-]+)+/?$")


class DependencyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["GET", "POST"]
    path: str = Field(max_length=512)
    body: Any = None
    idempotencyKey: str | None = Field(default=None, min_length=1, max_length=255)

    @field_validator("path")
    @classmethod
    def _safe_path(cls, value: str) -> str:
        if not _PATH.match(value) or any(part in (".", "..") for part in value.split("/")):
            raise ValueError("must be an absolute path of plain segments (no query, no '.' or '..')")
        return value

    @field_validator("idempotencyKey")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and not value.isprintable():
            raise ValueError("must be printable")
        return value


class CallEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    circuit: str = Field(min_length=1)
    request: DependencyRequest
    mode: Literal["CLOSED", "PROBE"]
    executionName: str = Field(min_length=1, max_length=80)


def parse_call(event: Any, dependency: str) -> CallEvent:
    try:
        call = CallEvent.model_validate(event)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)[:10]
        )
        raise ValidationError(f"invalid dependency call: {problems}") from None
    if call.circuit != dependency:
        raise ValidationError(f"this function calls {dependency!r}, not the circuit {call.circuit!r}")
    return call


# ------------------------------------------------------------------ execution-environment init (once)
settings = CallerSettings.from_environment(os.environ)
logger = Logger(service=settings.service_name)
tracer = Tracer(service=settings.service_name)
metrics = Metrics(service=settings.service_name)
api_key = load_api_key(settings)
caller = SingleCaller(
    settings.dependency,
    logger=logger,
    default_headers={API_KEY_HEADER: api_key} if api_key is not None else None,
)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        call = parse_call(event, settings.dependency.name)
    except ValidationError as exc:
        logger.error("invalid dependency call event", extra={lf.ERROR: str(exc)})
        metrics.add_metric(name="DependencyCallsFailed", unit=MetricUnit.Count, value=1)
        raise
    request = call.request
    headers = {}
    if request.method == "POST":
        headers[IDEMPOTENCY_KEY_HEADER] = request.idempotencyKey or call.executionName
    with logger.append_context_keys(execution_name=call.executionName, circuit_mode=call.mode):
        try:
            response = caller.call(
                request.method,
                request.path,
                json=request.body,
                headers=headers,
                remaining_ms=context.get_remaining_time_in_millis,
                circuit=f"workflow:{call.mode}",
            )
        except Exception as exc:
            metrics.add_metric(name="DependencyCallsFailed", unit=MetricUnit.Count, value=1)
            logger.warning("dependency call failed", extra={lf.ERROR: type(exc).__name__})
            raise
    metrics.add_metric(name="DependencyCallsSucceeded", unit=MetricUnit.Count, value=1)
    return {"status": response.status, "body": response.body}
