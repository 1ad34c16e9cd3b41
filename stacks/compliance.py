"""cdk-nag rule packs, always on: every synth (app.py, tests) runs them and fails on a finding.

Acknowledgements live next to the construct they concern, each naming the rule (and the
finding, where a rule reports several) with the reason it does not apply.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from cdk_nag import AwsSolutionsChecks, ServerlessChecks
from constructs import IConstruct


def apply_rule_packs(scope: IConstruct) -> None:
    Validations.of(scope).add_plugins(AwsSolutionsChecks(scope), ServerlessChecks(scope))


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one rule (``Rule`` or ``Rule[Finding]``) on ``scope`` and its children."""
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))
