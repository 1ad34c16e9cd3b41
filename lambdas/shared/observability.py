"""A function's Powertools logger, tracer and metrics, each for its service (POWERTOOLS_SERVICE_NAME)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer


def observability(service_name: str) -> tuple[Logger, Tracer, Metrics]:
    """Built once per execution environment, at init: ``logger, tracer, metrics = observability(...)``."""
    return Logger(service=service_name), Tracer(service=service_name), Metrics(service=service_name)
