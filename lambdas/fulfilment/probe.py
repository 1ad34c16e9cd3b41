"""``${ProbeFunctionArn}`` of ``circuit_controller.asl.json``: is the dependency healthy again?

The dependency's canary (``PROBE_CANARY``: method, path, optional JSON body, expected statuses; default
``GET /health`` expecting 200) once, so the probe exercises what the real calls use: a health route can
answer 200 while charges fail. A canary that is not GET/HEAD is sent with ``Dry-Run: true`` and a fixed
``Idempotency-Key`` (``canary-<dependency>``) and is healthy only if the answer echoes ``Dry-Run: true``:
a partner that ignored the header is reported unhealthy (``CanaryNotDryRunError``) and, thanks to the
fixed key, charged at most once, never once per probe. The demo partner honours the header
(``lambdas/partner_api/service.py``). Once, within a short budget (``PROBE_TIMEOUT_MS``, default 2 s, and
never beyond the invocation's remaining time), through the dependency client without its breaker
(``ProbeSettings.probe_policy``, ``external_circuit``): the controller's probe loop is the retry, with its
own capped backoff, and the controller owns the circuit record.

Event: ``{"circuit": "<circuit name>", "probe": <probe number>}``.

Healthy -> returns ``{"healthy": true, "status": <2xx>, "latencyMs": <float>, "probe": <n>}``.
Unhealthy -> raises; the Probe state catches every error (``States.ALL`` -> ProbeFailed), so the name
only tells people what happened, in the dependency client's words: ``TransientUpstreamError`` (5xx, 429
and the other "not now" answers, timeout, connection), ``UpstreamConfigurationError`` (401/403 or another
4xx: the key or the route is wrong, which is not healthy either), ``PermanentUpstreamError`` (400, 422:
the canary itself is wrong), ``BudgetExhaustedError``, ``DependencyUnhealthyError`` (a 2xx that is not an expected status, or a body
whose ``status`` is not "ok"), ``CanaryNotDryRunError`` (a side-effecting canary that was not a dry run),
``ValidationError`` (bad event, or a ``circuit`` that is not this function's dependency).

Environment: ``lambdas.fulfilment.environment.ProbeSettings``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

import pydantic
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from lambdas.contracts import log_fields as lf
from lambdas.contracts.api import IDEMPOTENCY_KEY_HEADER
from lambdas.fulfilment.environment import Canary, ProbeSettings
from lambdas.fulfilment.errors import CanaryNotDryRunError, DependencyUnhealthyError, ValidationError
from lambdas.shared.api_key import API_KEY_HEADER, load_api_key
from lambdas.shared.dependency_client import DependencyClient, DependencyResponse
from lambdas.shared.observability import observability

DRY_RUN_HEADER: Final = "Dry-Run"
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


def canary_headers(canary: Canary, dependency: str) -> dict[str, str]:
    if canary.read_only:
        return {}
    return {DRY_RUN_HEADER: "true", IDEMPOTENCY_KEY_HEADER: f"canary-{dependency}"}


def check_canary_response(canary: Canary, dependency: str, response: DependencyResponse) -> None:
    """Raise unless the answer is what a healthy dependency gives this canary."""
    target = f"{dependency} {canary.method} {canary.path}"
    if not canary.read_only:
        echoed = {k.lower(): v for k, v in response.headers.items()}.get(DRY_RUN_HEADER.lower(), "")
        if echoed.strip().lower() != "true":
            raise CanaryNotDryRunError(f"{target} answered {response.status} without {DRY_RUN_HEADER}: true")
    if response.status not in canary.expectedStatuses:
        raise DependencyUnhealthyError(
            f"{target} answered {response.status}, expected one of {list(canary.expectedStatuses)}"
        )
    if not reported_healthy(response.body):
        raise DependencyUnhealthyError(
            f"{target} answered {response.status} but reports status {response.body.get('status')!r}"
        )


def reported_healthy(body: Any) -> bool:
    """A health body that states a status must state a healthy one; any other 2xx body counts as healthy."""
    if isinstance(body, Mapping) and "status" in body:
        return str(body["status"]).lower() in HEALTHY_STATUSES
    return True


# ------------------------------------------------------------------ execution-environment init (once)
settings = ProbeSettings.from_environment(os.environ)
logger, tracer, metrics = observability(settings.service_name)
api_key = load_api_key(settings)
client = DependencyClient(
    settings.probe_policy,
    external_circuit="controller:OPEN",
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
    canary = settings.probe_canary
    try:
        response = client.request(
            canary.method,
            canary.path,
            json=canary.body,
            headers=canary_headers(canary, settings.dependency.name),
            remaining_ms=context.get_remaining_time_in_millis,
        )
        check_canary_response(canary, settings.dependency.name, response)
    except Exception as exc:
        metrics.add_metric(name="ProbesUnhealthy", unit=MetricUnit.Count, value=1)
        client.count_failed_probe()
        if isinstance(exc, CanaryNotDryRunError):
            logger.error("probe: the canary was not a dry run", extra={lf.ERROR: str(exc)})
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
