"""What the functions deploy with, and what their init costs.

One deployment with ``powertools_layer: "aws-published"``: the functions take the Powertools layer AWS
publishes (its ARN from the public SSM parameter for the pinned version) and a dependencies layer without
what that layer holds; the local cloud stands the published layer in. The same deployment's environments
feed the cold-start guard: the benchmark publishes every handler's wall-time ratio against the 1.3x
target (docs/benchmarks.md); this guard is loose on purpose (CPU time, one interleaved measurement, a
regression to 3x fails), so a busy machine cannot change its verdict while a handler that builds its
clients twice or imports a synth-only module still fails it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bench.cost import handler_environments, import_cost
from localcloud.deploy import DeployedStack, deploy, synthesize
from localcloud.emulator import Emulator
from stacks import lambda_packaging
from tests.conftest import cdk_context

REGRESSION_RATIO = 3.0
# The consumer on the main path, and the reader a caller waits on.
GUARDED = ("lambdas.order_consumer.handler", "lambdas.order_status.handler")


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployedStack]:
    context = cdk_context(stage="dev")
    context["service"] = {**context["service"], "powertools_layer": "aws-published"}
    synthesized = synthesize(context, tmp_path_factory.mktemp("cdk.out"))
    with Emulator() as emulator:
        yield deploy(emulator, synthesized)


def project_functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource["Properties"]
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
        and str(resource["Properties"].get("Handler", "")).startswith("lambdas.")
    }


def test_every_function_takes_the_published_powertools_layer_and_ours(published: DeployedStack) -> None:
    template = published.template
    (parameter_id,) = [
        name
        for name, parameter in template["Parameters"].items()
        if parameter.get("Default") == lambda_packaging.powertools_parameter_name()
    ]
    assert lambda_packaging.powertools_parameter_name() == (
        f"/aws/service/powertools/python/arm64/python3.14/{lambda_packaging.powertools_version()}"
    )
    functions = project_functions(template)
    assert functions
    for properties in functions.values():
        # Lambda merges layers into /opt in order; the two hold no package in common, so order is moot.
        layers = properties["Layers"]
        assert {"Ref": parameter_id} in layers
        ours = [layer for layer in layers if layer.get("Ref") in template["Resources"]]
        assert [template["Resources"][layer["Ref"]]["Type"] for layer in ours] == [
            "AWS::Lambda::LayerVersion"
        ]


def test_the_dependencies_layer_leaves_out_what_the_published_layer_holds() -> None:
    slim = lambda_packaging.dependencies_directory(lambda_packaging.IN_POWERTOOLS_LAYER) / "python"
    bundled = lambda_packaging.dependencies_directory() / "python"
    assert (slim / "requests").is_dir()
    assert not (slim / "aws_lambda_powertools").exists()
    assert not (slim / "pydantic").exists()
    assert (bundled / "aws_lambda_powertools").is_dir()
    assert (bundled / "pydantic").is_dir()


def test_the_local_cloud_stands_in_for_the_published_layer(published: DeployedStack) -> None:
    # moto's CloudFormation drops a function's Layers, so the stand-in is checked where deploy put it.
    arn = published.emulator.client("ssm").get_parameter(Name=lambda_packaging.powertools_parameter_name())
    versions = published.emulator.client("lambda").list_layer_versions(
        LayerName="powertools-arm64-python3-14"
    )
    assert arn["Parameter"]["Value"] in [v["LayerVersionArn"] for v in versions["LayerVersions"]]


@pytest.mark.parametrize("module", GUARDED)
def test_init_costs_less_than_three_times_the_libraries_it_imports(
    published: DeployedStack, module: str
) -> None:
    measured = import_cost(module, handler_environments(published)[module], repeat=1)
    assert measured.cpu_ratio < REGRESSION_RATIO, (
        f"{module}: init {measured.init_cpu_ms:.0f} ms CPU vs {measured.floor_cpu_ms:.0f} ms for its libraries "
        f"alone ({measured.cpu_ratio:.1f}x); the floor imports:\n" + "\n".join(measured.libraries)
    )
