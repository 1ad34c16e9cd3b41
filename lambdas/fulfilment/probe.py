"""``${ProbeFunctionArn}`` of ``circuit_controller.asl.json``: is the dependency healthy again?

``GET /health`` once, within a short budget (``PROBE_TIMEOUT_MS``, default 2 s, and never beyond the
invocation's remaining time), without retries or the Powertools breaker: the controller's probe loop is
the retry, with its own capped backoff.

Event: ``{"circuit": "<circuit name>", "probe": <probe number>}``.

Healthy -> returns ``{"healthy": true, "status": <2xx>, "latencyMs": <float>, "probe": <n>}``.
Unhealthy -> raises; the Probe state catches every error (``States.ALL`` -> ProbeFailed), so the name
only tells people what happened: ``TransientUpstreamError`` (5xx, 429, timeout, connection),
``PermanentUpstreamError`` (a 4xx: the route or the key is wrong, which is not healthy either),
``BudgetExhaustedError``, ``DependencyUnhealthyError`` (2xx with a body whose ``status`` is not "ok"),
``ValidationError`` (bad event, or a ``circuit`` that is not this function's dependency).

Environment: ``lambdas.fulfilment.environment.ProbeSettings``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

import pydantic
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from lambdas.fulfilment.environment import ProbeSettings
from lambdas.fulfilment.errors import DependencyUnhealthyError, ValidationError
from lambdas.fulfilment.single_call import SingleCaller
from lambdas.shared import log_fields as lf
from lambdas.shared.api_key import API_KEY_HEADER, load_api_key

HEALTH_PATH: Final = "/health"
HEALTHY_STATUSES: Final = frozenset({"ok", "healthy", "pass", "up"})


class ProbeEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    circuit: str = Field(min_length=1)
    probe: int = Field(default=0, ge=0)


def parse_probe(event: Any, dependency: str) -> ProbeEvent:
    try:
        probe = ProbeEvent.model_validate(event)
    except pydantic.ValidationError as exc:
        raise ValidationError(f"invalid probe event: {exc.error_count()} error(s)") from None
    if probe.circuit != dependency:
        raise ValidationError(f"this function probes {dependency!r}, not the circuit {probe.circuit!r}")
    return probe


def reported_healthy(body: Any) -> bool:
    """A health body that states a status must state a healthy one; any other 2xx body counts as healthy."""
    if isinstance(body, Mapping) and "status" in body:
        return str(body["status"]).lower() in HEALTHY_STATUSES
    return True


# ------------------------------------------------------------------ execution-environment init (once)
settings = ProbeSettings.from_environment(os.environ)
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
        probe = parse_probe(event, settings.dependency.name)
    except ValidationError as exc:
        logger.error("invalid probe event", extra={lf.ERROR: str(exc)})
        metrics.add_metric(name="ProbesUnhealthy", unit=MetricUnit.Count, value=1)
        raise
    try:
        response = caller.call(
            "GET",
            HEALTH_PATH,
            remaining_ms=context.get_remaining_time_in_millis,
            budget_cap_ms=settings.probe_timeout_ms,
            circuit="controller:OPEN",
        )
        if not reported_healthy(response.body):
            raise DependencyUnhealthyError(
                f"{settings.dependency.name} {HEALTH_PATH} answered {response.status} but reports "
                f"status {response.body.get('status')!r}"
            )
    except Exception as exc:
        metrics.add_metric(name="ProbesUnhealthy", unit=MetricUnit.Count, value=1)
        logger.warning("probe: unhealthy", extra={"probe": probe.probe, lf.ERROR: type(exc).__name__})
        raise
    metrics.add_metric(name="ProbesHealthy", unit=MetricUnit.Count, value=1)
    logger.info("probe: healthy", extra={"probe": probe.probe, lf.LATENCY_MS: round(response.latency_ms, 1)})
    return {
        "healthy": True,
        "status": response.status,
        "latencyMs": round(response.latency_ms, 1),
        "probe": probe.probe,
    }
