"""Docker-free packaging for every Python function of the service.

Two assets, built locally at synth time:
- a dependencies layer: ``lambdas/requirements.txt`` installed with
  ``pip --platform ... --only-binary=:all: --target`` for the Lambda runtime and
  architecture, cached under ``.build/`` by a hash of its inputs, so repeated synths
  (and test sessions) never reinstall;
- the code asset: the ``lambdas`` package alone, so handlers import
  ``lambdas.<function>.handler`` exactly as they do in tests.

With ``powertools_layer: "aws-published"`` the functions get the Powertools layer AWS publishes (the
version pinned in ``lambdas/requirements.txt``, found through its public SSM parameter for this runtime
and architecture) and a dependencies layer without what that layer already holds.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import cast

from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from stacks.config import ServiceConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LAMBDA_SOURCE = PROJECT_ROOT / "lambdas"
REQUIREMENTS = LAMBDA_SOURCE / "requirements.txt"
CONSTRAINTS = PROJECT_ROOT / "constraints.txt"
BUILD_ROOT = PROJECT_ROOT / ".build"
# Construct ids of the layers at the root of the stack.
DEPENDENCIES_ID, POWERTOOLS_ID = "Dependencies", "PowertoolsLayer"

RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64
_PIP_PLATFORM = "manylinux2014_aarch64"
_PIP_PYTHON_VERSION = "3.14"
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "requirements.txt", ".mypy_cache")


def _digest(*paths: Path, extra: str = "") -> str:
    sha = hashlib.sha256(extra.encode())
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if "__pycache__" in file.parts or file.suffix == ".pyc":
                continue
            sha.update(str(file.relative_to(PROJECT_ROOT)).encode())
            sha.update(file.read_bytes())
    return sha.hexdigest()[:16]


def _build_once(target: Path, build: Callable[[Path], object]) -> Path:
    """Build ``target`` atomically; concurrent synths (pytest-xdist) wait for the first one."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".staging-"))
            try:
                build(staging)
                os.replace(staging, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return target


# What the AWS-published Powertools layer holds (Powertools with its extras), left out of ours beside it.
IN_POWERTOOLS_LAYER = frozenset({"aws-lambda-powertools", "pydantic"})
POWERTOOLS_PARAMETER_PREFIX = "/aws/service/powertools/python"


def _requirement_name(line: str) -> str:
    return re.split(r"[\[=<>~! ;]", line.strip(), maxsplit=1)[0].lower()


def _requirements(without: frozenset[str]) -> list[str]:
    lines = [line.strip() for line in REQUIREMENTS.read_text().splitlines()]
    return [
        line for line in lines if line and not line.startswith("#") and _requirement_name(line) not in without
    ]


def powertools_version() -> str:
    """The Powertools version ``lambdas/requirements.txt`` pins: the published layer must match it."""
    for line in _requirements(frozenset()):
        if _requirement_name(line) == "aws-lambda-powertools":
            return line.split("==", 1)[1].strip()
    raise RuntimeError(f"{REQUIREMENTS} pins no aws-lambda-powertools version")


def powertools_parameter_name() -> str:
    """The public SSM parameter holding the published layer's ARN for this runtime, architecture, version."""
    return f"{POWERTOOLS_PARAMETER_PREFIX}/{ARCHITECTURE.name}/{RUNTIME.name}/{powertools_version()}"


@cache
def dependencies_directory(without: frozenset[str] = frozenset()) -> Path:
    """The layer folder (``python/`` inside), installed for the Lambda platform, less ``without``."""
    wanted = _requirements(without)
    key = _digest(REQUIREMENTS, CONSTRAINTS, extra=f"{_PIP_PLATFORM}-{_PIP_PYTHON_VERSION}-{sorted(without)}")

    def install(staging: Path) -> None:
        requirements = staging / "requirements.txt"
        requirements.write_text("\n".join(wanted) + "\n")
        command = [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--no-compile", "--platform", _PIP_PLATFORM, "--implementation", "cp",
            "--python-version", _PIP_PYTHON_VERSION, "--only-binary=:all:",
            "--target", str(staging / "python"), "-r", str(requirements), "-c", str(CONSTRAINTS),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"installing Lambda dependencies failed:\n{result.stdout}\n{result.stderr}")
        # The runtime ships boto3 with its matching botocore; a second botocore (pulled in by
        # aws-xray-sdk) on /opt/python would shadow it and could mismatch the runtime's boto3.
        for shadowing in (staging / "python").glob("botocore*"):
            shutil.rmtree(shadowing)
        requirements.unlink()

    return _build_once(BUILD_ROOT / "lambda-deps" / key, install)


@cache
def code_directory() -> Path:
    """A folder holding only the ``lambdas`` package (no tests, no infrastructure)."""
    key = _digest(LAMBDA_SOURCE)
    return _build_once(
        BUILD_ROOT / "lambda-code" / key,
        lambda staging: shutil.copytree(LAMBDA_SOURCE, staging / "lambdas", ignore=_IGNORED),
    )


def code_asset() -> lambda_.Code:
    return lambda_.Code.from_asset(str(code_directory()))


def function_layers(scope: Construct, config: ServiceConfig) -> list[lambda_.ILayerVersion]:
    """Every function's layers: ours, and the published Powertools layer if configured (no package in both).

    Built once per stack, at its root, by the first caller; every later caller gets the same layers.
    """
    stack = Stack.of(scope)
    built = stack.node.try_find_child(DEPENDENCIES_ID)
    if built is not None:
        published = stack.node.try_find_child(POWERTOOLS_ID)
        return [cast(lambda_.ILayerVersion, layer) for layer in (published, built) if layer is not None]
    if config.powertools_layer == "bundled":
        return [_dependencies_layer(stack, frozenset(), "every function's third-party packages")]
    published_layer = lambda_.LayerVersion.from_layer_version_arn(
        stack,
        POWERTOOLS_ID,
        ssm.StringParameter.value_for_string_parameter(stack, powertools_parameter_name()),
    )
    rest = _dependencies_layer(stack, IN_POWERTOOLS_LAYER, "what the Powertools layer lacks")
    return [published_layer, rest]


def _dependencies_layer(scope: Construct, without: frozenset[str], what: str) -> lambda_.LayerVersion:
    return lambda_.LayerVersion(
        scope,
        DEPENDENCIES_ID,
        code=lambda_.Code.from_asset(str(dependencies_directory(without))),
        compatible_runtimes=[RUNTIME],
        compatible_architectures=[ARCHITECTURE],
        description=f"Pinned third-party packages (lambdas/requirements.txt): {what}",
    )
