"""What the functions deploy with: the bundled dependencies layer, or the Powertools layer AWS publishes.

``powertools_layer: "aws-published"`` gives every function the published layer (its ARN from the public
SSM parameter for the pinned version, this runtime and architecture) and a dependencies layer without
what that layer holds. Built on a bare stack: the layers are all this construct decides.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import App, Stack, assertions

from stacks import lambda_packaging
from stacks.config import ServiceConfig
from tests.infra.conftest import Synthesized


def layers_template(dev: Synthesized, powertools_layer: str) -> dict[str, Any]:
    config = ServiceConfig.model_validate(
        {**dev.stack.config.model_dump(), "powertools_layer": powertools_layer}
    )
    stack = Stack(App(), "Layers")
    lambda_packaging.function_layers(stack, config)
    return assertions.Template.from_stack(stack).to_json()


def test_the_published_layer_comes_from_the_public_parameter_of_the_pinned_version(dev: Synthesized) -> None:
    template = layers_template(dev, "aws-published")
    assert lambda_packaging.powertools_parameter_name() == (
        f"/aws/service/powertools/python/arm64/python3.14/{lambda_packaging.powertools_version()}"
    )
    defaults = [p.get("Default") for p in template["Parameters"].values()]
    assert lambda_packaging.powertools_parameter_name() in defaults
    (ours,) = template["Resources"].values()
    assert ours["Type"] == "AWS::Lambda::LayerVersion"
    assert "what the Powertools layer lacks" in ours["Properties"]["Description"]


def test_bundled_is_one_layer_with_everything(dev: Synthesized) -> None:
    template = layers_template(dev, "bundled")
    assert "Parameters" not in template or not any(
        "/aws/service/powertools/" in str(p.get("Default")) for p in template["Parameters"].values()
    )
    assert [r["Type"] for r in template["Resources"].values()] == ["AWS::Lambda::LayerVersion"]
    # The stage as deployed: every function of the service takes that layer.
    layer = dev.stack.get_logical_id(dev.stack.node.find_child("Dependencies").node.default_child)
    functions = [
        f["Properties"]
        for f in dev.of_type("AWS::Lambda::Function").values()
        if str(f["Properties"].get("Handler", "")).startswith("lambdas.")
    ]
    assert functions and all({"Ref": layer} in f["Layers"] for f in functions)


def test_the_dependencies_layer_leaves_out_what_the_published_layer_holds() -> None:
    slim = lambda_packaging.dependencies_directory(lambda_packaging.IN_POWERTOOLS_LAYER) / "python"
    bundled = lambda_packaging.dependencies_directory() / "python"
    assert (slim / "requests").is_dir()
    assert not (slim / "aws_lambda_powertools").exists()
    assert not (slim / "pydantic").exists()
    assert (bundled / "aws_lambda_powertools").is_dir()
    assert (bundled / "pydantic").is_dir()
