"""cdk-nag (AwsSolutions + Serverless) and cfn-lint on the synthesized templates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import aws_sqs as sqs

from stacks.application import build_app
from tests.conftest import cdk_context
from tests.infra.conftest import Synthesized


def _report(synthesized: Synthesized) -> dict:
    return json.loads((synthesized.outdir / "validation-report.json").read_text())


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_rule_packs_pass_with_zero_unacknowledged_findings(
    stage: str, request: pytest.FixtureRequest
) -> None:
    synthesized: Synthesized = request.getfixturevalue(stage)
    plugins = {p["pluginName"]: p for p in _report(synthesized)["pluginReports"]}
    assert set(plugins) == {"AwsSolutions", "Serverless"}
    for plugin in plugins.values():
        assert plugin["conclusion"] == "success"
        assert plugin["violations"] == []
        for suppressed in plugin.get("suppressedViolations", []):
            # Every acknowledgement names its rule and says why.
            assert suppressed["acknowledgedId"].endswith(suppressed["ruleName"])
            assert len(suppressed["reason"]) > 30


def test_an_unacknowledged_finding_fails_synth(tmp_path) -> None:
    app, stack = build_app(cdk_context(), outdir=str(tmp_path))
    sqs.Queue(stack, "QueueWithoutDlq")  # no DLQ, no SSL policy: several rules fire
    with pytest.raises(Exception, match=r"AwsSolutions-SQS3|Serverless-SQSRedrivePolicy"):
        app.synth()


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_cfn_lint_reports_no_errors(stage: str, request: pytest.FixtureRequest, project_root) -> None:
    synthesized: Synthesized = request.getfixturevalue(stage)
    templates = sorted(str(p) for p in synthesized.outdir.glob("*.template.json"))
    assert templates
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "cfn-lint"),
            "--config-file",
            str(project_root / ".cfnlintrc.yaml"),
            *templates,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
