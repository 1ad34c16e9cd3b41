"""Scheduled (every ``reconciler.schedule_minutes``): no consumer stays paused without someone owning it.

Thin: parses the control document once per execution environment, runs one reconciliation
(reconcile.py, decisions in decisions.py), publishes one ``ConsumerPausedSeconds`` datapoint per
consumer (0 when it runs; the paused alarm watches it) and a counter per kind of intervention, and
fails the invocation if any consumer or circuit could not be reconciled (its error alarm), after
reconciling all the others.

Environment: ``CONSUMER_CONTROL`` (lambdas/contracts/consumer_control.py), ``POWERTOOLS_SERVICE_NAME``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from pydantic import Field, Json

from lambdas.contracts.consumer_control import CONTROL_ENV
from lambdas.contracts.environment import SERVICE_NAME
from lambdas.contracts.metrics import (
    DIMENSION_CONSUMER,
    METRIC_CONTROLLERS_RESTARTED,
    METRIC_PAUSED_SECONDS,
    METRIC_RESUMED,
    METRIC_STALE_LOCKS_CLEARED,
)
from lambdas.reconciler.control import ConsumerControl
from lambdas.reconciler.decisions import Action
from lambdas.reconciler.reconcile import Reconciler, Report
from lambdas.shared import aws
from lambdas.shared.env import EnvironmentSettings

ACTED = (Action.RESUME, Action.RESTART_CONTROLLER)


class ReconciliationError(RuntimeError):
    """Some consumers or circuits could not be reconciled this run (the others were)."""


class ReconcilerSettings(EnvironmentSettings):
    service_name: str = Field(min_length=1)
    control: Json[ConsumerControl]

    REQUIRED: ClassVar[Mapping[str, str]] = {
        "service_name": SERVICE_NAME,
        "control": CONTROL_ENV,
    }


# ------------------------------------------------------------------ execution-environment init (once)
settings = ReconcilerSettings.from_environment(os.environ)
SERVICE = settings.service_name
control = settings.control
logger = Logger(service=SERVICE)
metrics = Metrics(service=SERVICE)
_config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=5)
reconciler = Reconciler(
    control,
    lambda_client=aws.client("lambda", config=_config),
    dynamodb=aws.client("dynamodb", config=_config),
    stepfunctions=aws.client("stepfunctions", config=_config),
    clock=time.time,
)


def publish(report: Report) -> None:
    for decision in report.decisions:
        with single_metric(
            name=METRIC_PAUSED_SECONDS,
            unit=MetricUnit.Seconds,
            value=decision.paused_seconds,
            default_dimensions={"service": SERVICE},
        ) as metric:
            metric.add_dimension(name=DIMENSION_CONSUMER, value=decision.consumer)
        fields = {
            "consumer": decision.consumer,
            "circuit": decision.circuit,
            "action": str(decision.action),
            "paused_seconds": decision.paused_seconds,
            "reason": decision.reason,
        }
        if decision.action in ACTED:
            logger.warning("consumer_reconciled", extra=fields)
        else:
            logger.info("consumer_observed", extra=fields)
    for circuit, owner in report.stale_locks_cleared.items():
        logger.warning("stale_controller_lock_cleared", extra={"circuit": circuit, "owner": owner})
    for circuit, execution in report.restarted.items():
        logger.warning("controller_restarted", extra={"circuit": circuit, "execution": execution})
    metrics.add_metric(name=METRIC_RESUMED, unit=MetricUnit.Count, value=len(report.resumed))
    metrics.add_metric(name=METRIC_CONTROLLERS_RESTARTED, unit=MetricUnit.Count, value=len(report.restarted))
    metrics.add_metric(
        name=METRIC_STALE_LOCKS_CLEARED, unit=MetricUnit.Count, value=len(report.stale_locks_cleared)
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = reconciler.run()
    publish(report)
    summary = {
        "resumed": report.resumed,
        "restarted": report.restarted,
        "staleLocksCleared": report.stale_locks_cleared,
        "paused": {d.consumer: d.paused_seconds for d in report.decisions if d.paused_seconds},
    }
    if report.errors:
        logger.error("reconciliation_incomplete", extra={"errors": report.errors})
        raise ReconciliationError(f"could not reconcile {sorted(report.errors)}: {report.errors}")
    return summary
