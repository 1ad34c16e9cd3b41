#!/usr/bin/env python3
"""CDK entry point: `cdk synth -c stage=prod` picks the stage; cdk.json holds the settings."""

from stacks.application import build_app

app, _ = build_app()
app.synth()
