"""cdk-nag (AwsSolutions + Serverless), cfn-lint and checkov on the synthesized templates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

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


# A template with a finding nobody acknowledged, checked in the same run: the gate can fail.
OPEN_FUNCTION_URL = {
    "Resources": {
        "OpenUrl": {
            "Type": "AWS::Lambda::Url",
            "Properties": {
                "AuthType": "NONE",
                "TargetFunctionArn": "arn:aws:lambda:eu-west-1:123456789012:function:anyone-may-call",
            },
        }
    }
}


def test_checkov_finds_nothing_unacknowledged_and_every_skip_says_why(
    dev: Synthesized, prod: Synthesized, tmp_path: Path, project_root: Path
) -> None:
    checkov = project_root / ".venv-checkov" / "bin" / "checkov"
    assert checkov.exists(), "checkov lives in .venv-checkov: run `make install`"
    planted = tmp_path / "planted.template.json"
    planted.write_text(json.dumps(OPEN_FUNCTION_URL))
    templates = [p for s in (dev, prod) for p in sorted(s.outdir.glob("*.template.json"))]
    assert len(templates) == 2
    result = subprocess.run(
        [
            str(checkov),
            "--framework",
            "cloudformation",
            "--skip-download",  # offline: no guideline links from the vendor's API
            "--output",
            "junitxml",  # checkov 3.3's JSON writer fails on these templates (a tuple key)
            *[argument for path in (*templates, planted) for argument in ("--file", str(path))],
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    cases = ElementTree.fromstring(result.stdout).findall(".//testcase")
    assert len(cases) > 500, result.stderr
    findings = [(case, case.find("failure"), case.find("skipped")) for case in cases]
    failed = [
        (case.get("name", ""), case.get("file")) for case, failure, _ in findings if failure is not None
    ]
    assert len(failed) == 1 and "CKV_AWS_258" in failed[0][0], failed
    assert failed[0][1] is not None and failed[0][1].endswith(planted.name), failed
    skipped = [
        (case.get("name", ""), skip.get("message", "")) for case, _, skip in findings if skip is not None
    ]
    assert {"CKV_AWS_27", "CKV_AWS_116", "CKV_AWS_158"} <= {name.split("]")[1][1:] for name, _ in skipped}
    for name, reason in skipped:
        assert len(reason) > 30, name


def test_every_asynchronously_invoked_function_has_a_failure_destination(dev: Synthesized) -> None:
    """What the CKV_AWS_116 acknowledgement claims: no async invocation can fail into nowhere."""
    asynchronous = {
        "events.amazonaws.com",
        "sns.amazonaws.com",
        "s3.amazonaws.com",
        "scheduler.amazonaws.com",
    }
    # An alias's invoke config names it in its Qualifier (a Select over the alias ARN).
    on_failure = [
        json.dumps(config["Properties"]["Qualifier"])
        for config in dev.of_type("AWS::Lambda::EventInvokeConfig").values()
        if config["Properties"].get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
    ]
    invoked = 0
    for permission in dev.of_type("AWS::Lambda::Permission").values():
        properties = permission["Properties"]
        if properties["Principal"] not in asynchronous:
            continue
        invoked += 1
        alias = properties["FunctionName"]["Ref"]  # every function is invoked through its alias
        assert any(f'"Ref": "{alias}"' in qualifier for qualifier in on_failure), properties
    assert invoked >= 1  # the reconciler's schedule
