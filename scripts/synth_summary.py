"""Print what `make synth` produced: resources by type and the resilience settings that matter."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from stacks.retry_budget import METADATA_KEY, table


def _summarize(template_path: Path) -> list[str]:
    template: dict[str, Any] = json.loads(template_path.read_text())
    resources: dict[str, Any] = template["Resources"]
    lines = [f"{template_path.name}: {len(resources)} resources"]
    for resource_type, count in sorted(Counter(r["Type"] for r in resources.values()).items()):
        lines.append(f"  {count:3d}  {resource_type}")

    def of_type(resource_type: str) -> list[tuple[str, dict[str, Any]]]:
        return [(key, r["Properties"]) for key, r in resources.items() if r["Type"] == resource_type]

    for logical_id, props in of_type("AWS::SQS::Queue"):
        if redrive := props.get("RedrivePolicy"):
            lines.append(
                f"  queue {logical_id}: visibility {props['VisibilityTimeout']} s, "
                f"maxReceiveCount {redrive['maxReceiveCount']} -> {redrive['deadLetterTargetArn']['Fn::GetAtt'][0]}"
            )
    lines += [
        f"  event source {logical_id}: batch {props.get('BatchSize')}, "
        f"max concurrency {props.get('ScalingConfig', {}).get('MaximumConcurrency')}, "
        f"{'partial batch responses' if props.get('FunctionResponseTypes') else 'WHOLE-BATCH retries'}"
        for logical_id, props in of_type("AWS::Lambda::EventSourceMapping")
    ]
    lines += [
        f"  function {logical_id}: {props.get('Handler')}, timeout {props.get('Timeout')} s, "
        f"reserved concurrency {props.get('ReservedConcurrentExecutions', 'none')}"
        for logical_id, props in of_type("AWS::Lambda::Function")
    ]
    lines += table(template.get("Metadata", {}).get(METADATA_KEY, []))
    return lines


def main(cdk_out: str) -> int:
    templates = sorted(Path(cdk_out).glob("*.template.json"))
    if not templates:
        print(f"no templates in {cdk_out}", file=sys.stderr)
        return 1
    for template in templates:
        print("\n".join(_summarize(template)))
    report = Path(cdk_out) / "validation-report.json"
    if report.exists():
        for plugin in json.loads(report.read_text())["pluginReports"]:
            print(
                f"cdk-nag {plugin['pluginName']}: {plugin['conclusion']}, "
                f"{len(plugin['violations'])} findings, {len(plugin.get('suppressedViolations', []))} acknowledged"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "cdk.out"))
