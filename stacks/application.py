"""Builds the CDK app the same way for app.py, tests and the local cloud."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import App

from stacks.compliance import apply_rule_packs
from stacks.config import ServiceConfig
from stacks.service_stack import ResilientServiceStack

DEFAULT_STAGE = "dev"


def load_config(app: App) -> ServiceConfig:
    stage = app.node.try_get_context("stage") or DEFAULT_STAGE
    return ServiceConfig.from_context(
        app.node.get_context("service"), app.node.get_context("stages"), str(stage)
    )


def build_app(
    context: Mapping[str, Any] | None = None, outdir: str | None = None
) -> tuple[App, ResilientServiceStack]:
    """``context`` replaces cdk.json's (tests pass it); None reads cdk.json as the CLI does."""
    app = App(context=dict(context) if context is not None else None, outdir=outdir)
    config = load_config(app)
    # Environment-agnostic on purpose: no lookups, so synth needs no credentials or network.
    stack = ResilientServiceStack(app, config.stack_name, config=config)
    apply_rule_packs(app)
    return app, stack
