"""The local cloud stands in for the AWS-published SSM parameters a template resolves at deploy time."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from localcloud.deploy import DeployError, seed_public_parameters
from localcloud.emulator import Emulator
from stacks import lambda_packaging


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator() as running:
        yield running


def template_resolving(name: str) -> SimpleNamespace:
    parameter = {"Type": "AWS::SSM::Parameter::Value<String>", "Default": name}
    return SimpleNamespace(template={"Parameters": {"Layer": parameter}})


def test_the_published_powertools_layer_is_stood_in_by_a_local_layer(emulator: Emulator) -> None:
    name = lambda_packaging.powertools_parameter_name()
    seeded = seed_public_parameters(emulator, template_resolving(name))  # type: ignore[arg-type]
    arn = emulator.client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
    assert seeded == {name: arn}
    versions = emulator.client("lambda").list_layer_versions(LayerName="powertools-arm64-python3-14")
    assert arn in [v["LayerVersionArn"] for v in versions["LayerVersions"]]


def test_an_unknown_public_parameter_fails_the_deploy_by_name(emulator: Emulator) -> None:
    with pytest.raises(DeployError, match="/aws/service/unknown/thing"):
        seed_public_parameters(emulator, template_resolving("/aws/service/unknown/thing"))  # type: ignore[arg-type]
