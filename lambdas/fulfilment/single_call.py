"""Exactly one HTTP attempt at a dependency: no retry loop, no Powertools breaker.

For the functions whose caller is itself the resilience layer: ``circuit_breaker.asl.json`` (one call per
execution; the workflow counts failures in the shared circuit record and its callers retry) and the
circuit controller's probe (the probe loop is the retry). Retrying here would hide failures from the
breaker; guarding with the Powertools breaker would count every failure twice.

It reuses the dependency client's vocabulary so the outcome reads the same everywhere: the error classes
(2xx succeed; other 4xx and 3xx -> ``PermanentUpstreamError``; 5xx, 429, read timeout, connection failure
-> ``TransientUpstreamError`` with the ``Retry-After`` hint; no time for an attempt ->
``BudgetExhaustedError``), the per-attempt log line (``upstream_call``, fields from ``log_fields``) and
the EMF metrics ``UpstreamCalls`` / ``UpstreamLatency`` / ``UpstreamErrors`` by dependency and status
class, so these calls show on the dependency's dashboard and count toward its upstream-error alarm.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from lambdas.shared import log_fields as lf
from lambdas.shared.dependency_client import (
    METRIC_UPSTREAM_CALLS,
    METRIC_UPSTREAM_ERRORS,
    METRIC_UPSTREAM_LATENCY,
    MIN_READ_TIMEOUT_MS,
    BudgetExhaustedError,
    DependencyPolicy,
    PermanentUpstreamError,
    SupportsLog,
    TransientUpstreamError,
    UpstreamError,
    parse_retry_after,
    shared_session,
    status_class_for,
)
from lambdas.shared.request_signing import signing_auth

SINGLE_ATTEMPT = 1


@dataclass(frozen=True)
class SingleCallResponse:
    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    latency_ms: float = 0.0


class SingleCaller:
    """One attempt per call, bounded by the invocation's remaining time (and an optional tighter cap)."""

    def __init__(
        self,
        policy: DependencyPolicy,
        *,
        logger: SupportsLog,
        session: requests.Session | None = None,
        default_headers: Mapping[str, str] | None = None,
        metrics_namespace: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self._logger = logger
        self._session = session or shared_session()
        self._auth = signing_auth(policy.signing_service)  # an IAM-authorized endpoint (function URL)
        self._default_headers = {
            "User-Agent": f"resilient-serverless/{policy.name}",
            **(default_headers or {}),
        }
        self._namespace = metrics_namespace
        self._clock = clock
        self._wall_clock = wall_clock

    def call(
        self,
        method: str,
        path: str,
        *,
        remaining_ms: Callable[[], int],
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        budget_cap_ms: int | None = None,
        circuit: str = "workflow",
    ) -> SingleCallResponse:
        """Call ``{base_url}{path}`` once; raises the client's UpstreamError subclasses."""
        method = method.upper()
        budget_ms = float(remaining_ms() - self.policy.safety_margin_ms)
        if budget_cap_ms is not None:
            budget_ms = min(budget_ms, float(budget_cap_ms))
        connect_ms = min(float(self.policy.connect_timeout_ms), budget_ms / 2)
        read_ms = min(float(self.policy.attempt_timeout_ms), budget_ms - connect_ms)
        if read_ms < MIN_READ_TIMEOUT_MS:
            raise BudgetExhaustedError(
                f"{self.policy.name} {method} {path}: no time budget left for an attempt",
                dependency=self.policy.name,
                status_class=lf.STATUS_CLASS_TIMEOUT,
            )
        started = self._clock()
        status: int | None = None
        response: requests.Response | None = None
        try:
            response = self._session.request(
                method,
                f"{self.policy.base_url}{path}",
                json=json,
                headers={**self._default_headers, **(headers or {})},
                auth=self._auth,
                timeout=(connect_ms / 1000.0, read_ms / 1000.0),
                allow_redirects=False,
            )
            status = response.status_code
            status_class = status_class_for(status)
        except requests.exceptions.ReadTimeout:
            status_class = lf.STATUS_CLASS_TIMEOUT
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError):
            status_class = lf.STATUS_CLASS_CONNECTION
        latency_ms = (self._clock() - started) * 1000.0
        succeeded = response is not None and status is not None and 200 <= status < 300
        self._emit_metrics(None if succeeded else status_class, latency_ms)

        if succeeded and response is not None and status is not None:
            self._log(method, path, status, status_class, latency_ms, circuit, lf.OUTCOME_SUCCESS)
            return SingleCallResponse(
                status=status, body=_decode(response), headers=dict(response.headers), latency_ms=latency_ms
            )
        if status is not None and status < 500 and status != 429:
            self._log(method, path, status, status_class, latency_ms, circuit, lf.OUTCOME_PERMANENT)
            raise self._error(PermanentUpstreamError, method, path, "was rejected", status, status_class)
        retry_after = parse_retry_after(
            response.headers.get("Retry-After") if response is not None else None, self._wall_clock()
        )
        self._log(method, path, status, status_class, latency_ms, circuit, lf.OUTCOME_GIVE_UP, retry_after)
        raise self._error(TransientUpstreamError, method, path, "failed", status, status_class, retry_after)

    def _error(
        self,
        error_type: type[UpstreamError],
        method: str,
        path: str,
        what: str,
        status: int | None,
        status_class: str,
        retry_after: float | None = None,
    ) -> UpstreamError:
        shown = status if status is not None else status_class
        return error_type(
            f"{self.policy.name} {method} {path} {what} ({shown}, single attempt)",
            dependency=self.policy.name,
            status=status,
            status_class=status_class,
            retry_after=retry_after,
            attempts=SINGLE_ATTEMPT,
        )

    def _log(
        self,
        method: str,
        path: str,
        status: int | None,
        status_class: str,
        latency_ms: float,
        circuit: str,
        outcome: str,
        retry_after: float | None = None,
    ) -> None:
        fields: dict[str, Any] = {
            lf.DEPENDENCY: self.policy.name,
            lf.METHOD: method,
            lf.ROUTE: path,
            lf.STATUS: status,
            lf.STATUS_CLASS: status_class,
            lf.ATTEMPT: SINGLE_ATTEMPT,
            lf.MAX_ATTEMPTS: SINGLE_ATTEMPT,
            lf.LATENCY_MS: round(latency_ms, 1),
            lf.CIRCUIT_STATE: circuit,
            lf.OUTCOME: outcome,
        }
        if retry_after is not None:
            fields[lf.RETRY_AFTER_S] = round(retry_after, 3)
        log = self._logger.info if outcome == lf.OUTCOME_SUCCESS else self._logger.warning
        log(lf.UPSTREAM_CALL_MESSAGE, extra=fields)

    def _emit_metrics(self, error_class: str | None, latency_ms: float) -> None:
        dimensions = {lf.DEPENDENCY: self.policy.name}
        self._metric(METRIC_UPSTREAM_CALLS, MetricUnit.Count, 1, dimensions)
        self._metric(METRIC_UPSTREAM_LATENCY, MetricUnit.Milliseconds, latency_ms, dimensions)
        if error_class is not None:
            self._metric(
                METRIC_UPSTREAM_ERRORS, MetricUnit.Count, 1, {**dimensions, lf.STATUS_CLASS: error_class}
            )

    def _metric(self, name: str, unit: MetricUnit, value: float, dimensions: dict[str, str]) -> None:
        with single_metric(
            name=name, unit=unit, value=value, namespace=self._namespace, default_dimensions=dimensions
        ):
            pass


def _decode(response: requests.Response) -> Any:
    if not response.content:
        return None
    if "json" in response.headers.get("Content-Type", ""):
        try:
            return response.json()
        except ValueError:
            pass
    return response.text
